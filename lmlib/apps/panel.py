"""The generation panel for notebooks: ipywidgets controls around functions passed in.

    panel = panel_for_models(["austen", "runs/cpu"])   # or GenerationPanel(stream, next_words)
    panel                                               # the last expression displays it

The panel only builds controls and wires them ("Separating concerns", jupyter-widgets
tutorial): the model work is done by `stream(run, prompt, **keywords)` and
`next_words(run, prompt, k)`, so tests drive it headless with `.value` and `.click()`.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import ipywidgets as w

from lmlib.sampling import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, INTERACTIVE_MAX_NEW_TOKENS

MAX_BITS = 16.0  # surprisal at which a word gets the strongest colour (p = 1/65536)


def surprise_colour(bits: float) -> str:
    """CSS background for a word that was `bits` surprising: clear at 0, red at MAX_BITS."""
    alpha = min(max(bits, 0.0) / MAX_BITS, 1.0) * 0.65
    return f"rgba(220, 40, 20, {alpha:.3f})"


def tokens_html(prompt: str, pieces: Sequence[str], surprisals: Sequence[float] | None = None) -> str:
    """The prompt in bold, then the readable pieces (each with its own space); coloured by surprise
    when `surprisals` are given, the spaces left uncoloured."""
    words = []
    for i, piece in enumerate(pieces):
        word = piece.lstrip()
        space = html.escape(piece[: len(piece) - len(word)])
        if surprisals is None:
            words.append(space + html.escape(word))
        else:
            words.append(
                f'{space}<span title="{surprisals[i]:.1f} bits" style="background:'
                f'{surprise_colour(surprisals[i])}">{html.escape(word)}</span>'
            )
    return f'<div class="lm-output"><b>{html.escape(prompt)}</b>{"".join(words)}</div>'


def distribution_html(pairs: Iterable[tuple[str, float]]) -> str:
    """A horizontal bar chart (plain HTML, so it renders in Voila and in tests) of word probabilities."""
    pairs = list(pairs)
    top = max((p for _, p in pairs), default=1.0) or 1.0
    rows = "".join(
        f'<div style="display:flex;align-items:center;gap:6px;font-family:monospace">'
        f'<span style="width:9em;text-align:right;overflow:hidden">{html.escape(word)}</span>'
        f'<span style="background:#2b5d9b;height:0.9em;width:{200 * p / top:.0f}px"></span>'
        f"<span>{100 * p:.1f}%</span></div>"
        for word, p in pairs
    )
    return f'<div class="lm-dist"><b>Next word</b>{rows}</div>'


class GenerationPanel:
    """Prompt, sampling controls, Generate/Stop, streamed output and the next-word chart.

    `pieces(run, prompt, tokens)` turns tokens into the readable text each adds
    (lmlib.generate.continuation_pieces); without it each word is shown after a space.
    """

    def __init__(
        self,
        stream: Callable,
        next_words: Callable,
        *,
        runs: Sequence[str] = ("model",),
        pieces: Callable[[str, str, list[str]], list[str]] | None = None,
        background: bool = True,
    ):
        self._stream, self._next_words, self._pieces = stream, next_words, pieces
        self._background = background  # False runs Generate in the caller's thread (tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tokens: list[str] = []
        self.words: list[str] = []  # the tokens in their usual casing when the run has a table
        self.pieces: list[str] = []  # the readable text each token adds (its space, its capital)
        self.surprisals: list[float] = []
        self.text = ""  # the prompt + the pieces: what plain and coloured views both show
        self._prompt = ""  # the prompt of the shown generation (the box may have changed since)

        wide = {"style": {"description_width": "7em"}}  # room for "Temperature" and "Max length"
        self.run = w.Dropdown(options=list(runs), description="Run", **wide)
        self.run.layout.display = None if len(runs) > 1 else "none"  # a picker only when there is a choice
        self.prompt = w.Textarea(
            value="It is a truth universally acknowledged",
            description="Prompt",
            **wide,
            continuous_update=False,
            layout=w.Layout(width="100%"),
        )
        self.temperature = w.FloatSlider(
            value=DEFAULT_TEMPERATURE, min=0.1, max=1.5, step=0.05, description="Temperature", **wide
        )
        self.length = w.IntSlider(
            value=DEFAULT_MAX_NEW_TOKENS,
            min=10,
            max=INTERACTIVE_MAX_NEW_TOKENS,
            step=5,
            description="Max length",
            **wide,
        )
        self.top_k = w.IntSlider(value=0, min=0, max=100, description="Top-k (0 off)", **wide)
        self.top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="Top-p (1 off)", **wide)
        self.seed = w.IntText(value=0, description="Seed", disabled=True, **wide)
        self.random_seed = w.Checkbox(value=True, description="random seed")
        self.colour = w.Checkbox(value=False, description="colour by surprise")
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.status = w.HTML()
        self.output = w.HTML(layout=w.Layout(min_height="4em"))
        self.distribution = w.HTML()

        self.random_seed.observe(lambda change: setattr(self.seed, "disabled", change["new"]), "value")
        self.prompt.observe(lambda _: self.show_distribution(), "value")
        self.run.observe(lambda _: self.show_distribution(), "value")
        self.colour.observe(lambda _: self._render(final=self._thread is None), "value")
        self.generate_button.on_click(lambda _: self.generate())
        self.stop_button.on_click(lambda _: self._stop.set())
        self.widget = w.VBox(
            [
                self.run,
                self.prompt,
                w.HBox([self.temperature, self.length]),
                w.HBox([self.top_k, self.top_p]),
                w.HBox([self.seed, self.random_seed, self.colour]),
                w.HBox([self.generate_button, self.stop_button, self.status]),
                self.output,
                self.distribution,
            ]
        )

    def _repr_mimebundle_(self, **kwargs):
        """Display as the panel's widget, with ipywidgets 7 (Colab) and 8 alike.

        ipywidgets 8 widgets display through `_repr_mimebundle_`, ipywidgets 7 ones through
        `_ipython_display_` (and have no `_repr_mimebundle_`): both send this same bundle, a
        reference to the widget's model (widget-view version 2.0 in both), so it is built here.
        """
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.widget.model_id,
            },
            # what a stored notebook shows without a kernel: one line, not the widget tree
            "text/plain": f"GenerationPanel(runs={list(self.run.options)}): run the notebook to use it",
        }

    def show_distribution(self, k: int = 10) -> None:
        """Chart the model's top `k` next words for the current prompt."""
        try:
            self.distribution.value = distribution_html(self._next_words(self.run.value, self.prompt.value, k))
        except Exception as err:  # noqa: BLE001 - any failure is shown in the panel, not lost in a thread
            self.distribution.value = f"<i>{html.escape(str(err))}</i>"

    def generate(self) -> None:
        """Start generating with the current settings (what the Generate button does)."""
        if self._thread is not None:
            return
        seed = secrets.randbelow(2**31) if self.random_seed.value else self.seed.value
        self.seed.value = seed  # shown, so a random result can be repeated
        keywords = dict(
            max_new_tokens=self.length.value,
            temperature=self.temperature.value,
            top_k=self.top_k.value,
            top_p=self.top_p.value,
            seed=seed,
        )
        self._stop.clear()
        self.tokens, self.words, self.pieces, self.surprisals = [], [], [], []
        self.text, self._prompt = "", self.prompt.value
        self.generate_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "generating…"
        self._thread = threading.Thread(
            target=self._work, args=(self.run.value, self.prompt.value, keywords), daemon=True
        )
        if self._background:
            self._thread.start()  # the kernel stays free to receive the Stop click
        else:
            self._thread.run()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running generation has finished (for scripts and tests)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _work(self, run: str, prompt: str, keywords: dict) -> None:
        how = "done"
        try:
            for item in self._stream(run, prompt, **keywords):
                if self._stop.is_set():
                    how = "stopped"
                    break
                self.tokens.append(item.token)
                self.words.append(getattr(item, "word", "") or item.token)
                self.surprisals.append(float(item.surprisal))
                self.pieces = self._readable_pieces(run, prompt)
                self._render(final=False)
            self.pieces = self._readable_pieces(run, prompt)  # final: an apostrophe settles on the next word
            self.text = prompt + "".join(self.pieces)
            self.status.value = (
                f"{how}: {len(self.tokens)} words, temperature {keywords['temperature']:.2f}, seed {keywords['seed']}"
            )
        except Exception as err:  # noqa: BLE001 - shown in the panel; a thread would swallow it
            self.status.value = f'<span style="color:#c00">error: {html.escape(str(err))}</span>'
        finally:
            self._thread = None
            self._render(final=True)
            self.generate_button.disabled, self.stop_button.disabled = False, True

    def _readable_pieces(self, run: str, prompt: str) -> list[str]:
        if self._pieces is None:
            return [" " + word for word in self.words]
        return self._pieces(run, prompt, list(self.tokens))

    def _render(self, final: bool) -> None:
        if self.colour.value:
            self.output.value = tokens_html(self._prompt, self.pieces, self.surprisals)
        elif final and self.text:
            self.output.value = f'<div class="lm-output">{html.escape(self.text)}</div>'
        else:
            self.output.value = tokens_html(self._prompt, self.pieces)


def choose_runs(runs_root: str | Path = "runs", run_name: str = "") -> list[Path]:
    """Finished runs under `runs_root`, best (lowest valid perplexity) first; `run_name` first if given."""
    from lmlib.errors import LMError
    from lmlib.training.runs import list_runs, read_results

    def valid_ppl(run: Path) -> float:
        value = (read_results(run) or {}).get("valid_ppl")
        return value if isinstance(value, (int, float)) and value == value else float("inf")  # NaN last

    runs = sorted(list_runs(runs_root), key=lambda run: (valid_ppl(run), run.name))
    if run_name:
        named = [run for run in runs if run.name == run_name]
        if not named:
            found = ", ".join(run.name for run in runs) or "none"
            raise LMError(
                f"no finished run {run_name!r} under {runs_root} (found: {found}); "
                "train it first (notebook 02) or leave run_name empty for the best run"
            )
        runs = named + [run for run in runs if run.name != run_name]
    return runs


def runs_or_shipped(runs_root: str | Path = "runs", run_name: str = "") -> list[str | Path]:
    """`choose_runs`, or, when no run has finished yet, the model shipped with lmlib (and said so).

    So that notebook 04 works the moment it is opened (on Colab too): no training first.
    """
    runs = choose_runs(runs_root, run_name)
    if runs:
        return runs
    from lmlib.pretrained.locate import DEFAULT_MODEL

    print(
        f"No finished run under {str(runs_root)!r}: using {DEFAULT_MODEL!r}, the model shipped with lmlib.\n"
        "Train your own with notebook 02, then run this notebook again to pick it."
    )
    return [DEFAULT_MODEL]


def model_label(source: str | Path) -> str:
    """How the picker names a model: a folder by its name, a shipped model or a Hub id as given."""
    path = Path(source)
    return path.name if path.is_dir() else str(source)


def panel_for_models(models: Sequence[str | Path], device: str = "auto", **options) -> GenerationPanel:
    """A panel over models (shipped names, exported folders, run directories, Hub ids); each loaded on first use.

    `device` follows training's rule: `auto` is the GPU when there is one (a Colab T4), else the CPU.
    """
    from lmlib.generate import Generator

    sources = {model_label(m): m for m in models}
    loaded: dict[str, object] = {}
    lock = threading.Lock()

    def generator(run: str):
        with lock:  # two threads asking at once load the model once
            if run not in loaded:
                loaded[run] = Generator.from_pretrained(sources[run], device)
            return loaded[run]

    def stream(run, prompt, **keywords):
        return generator(run).stream(prompt, **keywords)

    def next_words(run, prompt, k):  # the chart's labels in the run's casing
        return [(generator(run).word(token), p) for token, p in generator(run).next_word_distribution(prompt, k=k)]

    def pieces(run, prompt, tokens):
        return generator(run).pieces(prompt, tokens)

    panel = GenerationPanel(stream, next_words, runs=list(sources), pieces=pieces, **options)
    panel.show_distribution()
    return panel


panel_for_runs = panel_for_models  # its name before models could be shipped or exported
