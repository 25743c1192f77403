"""The numbers the README and docs/ quote, written from the committed files they come from.

    python scripts/docs_numbers.py           # rewrite every generated block in README.md and docs/*.md
    python scripts/docs_numbers.py --check   # exit 1 and name the blocks that differ from their sources

A generated block is Markdown between `<!-- numbers: NAME -->` and `<!-- /numbers -->`. BLOCKS
below says, for each NAME, which committed files it is written from (a report's summary.json,
a benchmark's results, the shipped model's folder) and which command wrote them; every block
ends by naming both. Prose around the blocks names no measured number of its own
(tests/unit/test_docs.py checks both), so the text cannot drift from what was measured.

A block whose source is missing is left as it is and named, with what writes it; that fails
--check too. Nothing here imports torch: the check runs in the unit tier.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmlib.report import numbers  # noqa: E402

BLOCK = re.compile(r"(<!-- numbers: (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /numbers -->)", re.S)
RESULTS = "benchmarks/results"


class MissingSource(Exception):
    """A block's source file is not in the checkout (yet)."""


@dataclass(frozen=True)
class Block:
    """A generated block: what it is written from, what wrote that, and how it is drawn."""

    sources: tuple[str, ...]  # committed files, relative to the checkout
    command: str  # the command that writes them ("" for files kept by hand)
    render: Callable[[], str]  # the Markdown, read from the sources
    required: bool = True  # False: the render says what its absence means

    def text(self) -> str:
        for source in self.sources:
            if self.required and not (ROOT / source).exists():
                raise MissingSource(f"{source} is missing; write it with `{self.command}`")
        text = self.render().rstrip()
        if not self.sources:
            return text  # the render names where it read from
        named = ", ".join(f"`{source}`" for source in self.sources)
        written = f", written by `{self.command}`" if self.command else ""
        return f"{text}\n\nSource: {named}{written}."


def load(relative: str) -> dict:
    return json.loads((ROOT / relative).read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fixed(value, digits: int = 1) -> str:
    return numbers.DASH if numbers.missing(value) else f"{float(value):,.{digits}f}"


def machine(m: dict, threads=None) -> str:
    """'AMD EPYC, 2 cores, torch 2.13.0+cpu, 1 torch thread, bf16 instructions'."""
    threads = m.get("torch_threads") if threads is None else threads
    parts = [m.get("cpu") or "an unnamed CPU", f"{m.get('cores')} cores", f"torch {m.get('torch')}"]
    if isinstance(threads, int):
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''}")
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']}")
    if "cpu_bf16" in m:
        parts.append("bf16 instructions" if m["cpu_bf16"] else "no bf16 instructions")
    return ", ".join(parts)


def load_average(*samples) -> str:
    """The 1-minute load averages seen, as 'load average 1.0' or '1.0–1.8'."""
    ones = sorted(float(s[0] if isinstance(s, list | tuple) else s) for s in samples if s is not None)
    if not ones:
        return "load average not recorded"
    low, high = fixed(ones[0]), fixed(ones[-1])
    return f"load average {low}" if low == high else f"load average {low}–{high}"


# --- reports -----------------------------------------------------------------------------


def _arm_rows(summary: dict) -> list[list[str]]:
    runs: dict[str, list[dict]] = {}
    for run in summary["runs"]:
        runs.setdefault(run["arm"], []).append(run)
    rows = []
    for arm in summary["arms"]:
        mine = runs[arm["arm"]]
        epochs = sorted({numbers.epochs(r["epochs_run"]) for r in mine}, key=float)
        ended = sorted({str(r["stopped"]).replace("_", " ") for r in mine})
        learning = {bool(r.get("finished_learning")) for r in mine}
        rows.append(
            [
                f"`{arm['arm']}`",
                numbers.count(mine[0]["parameters"]),
                numbers.ppl_range(arm["valid_mean"], arm["valid_min"], arm["valid_max"], arm["seeds"]),
                numbers.ppl_range(arm["test_mean"], arm["test_min"], arm["test_max"], arm["seeds"]),
                "–".join(epochs),
                ", ".join(ended),
                "no" if learning == {False} else "yes" if learning == {True} else "some",
                "/".join(sorted({str(r["resolved_precision"]) for r in mine})),
            ]
        )
    return rows


def _build_time(summary: dict) -> str:
    """The build's wall time, or, where it reused finished runs, their training time and the render's."""
    reused = summary.get("reused_runs") or []
    if not reused:
        return f"{numbers.minutes(summary['wall_seconds'])} minutes to build"
    return (
        f"rendered in {numbers.minutes(summary['wall_seconds'])} minutes from {len(reused)} finished runs that "
        f"trained for {numbers.minutes(summary['training_seconds'])} minutes in all"
    )


def report_block(folder: str) -> Block:
    """A report's arms: parameters, valid and test perplexity (mean and range over seeds), epochs, how runs ended."""

    def render() -> str:
        summary = load(f"{folder}/summary.json")
        header = ["arm", "parameters", "valid ppl", "test ppl", "epochs", "ended by", "finished learning", "precision"]
        seeds = sorted({len(s) for s in summary["seeds"].values()})
        note = (
            f"The `{summary['profile']}` build on `{summary['corpus']}`: perplexity is the mean over "
            f"{'/'.join(map(str, seeds))} seeds with its range (min–max) in brackets; "
            f"{_build_time(summary)}; {summary.get('machine') or 'machine not recorded'}; {summary['versions']}."
        )
        return table(header, _arm_rows(summary)) + "\n\n" + note

    profile = Path(folder).name
    return Block((f"{folder}/summary.json",), f"python -m lmlib report --profile {profile}", render)


def _rebuild_on_another_cpu() -> str:
    """benchmarks/rebuild_precision.py's comparison of the committed report with the bf16 build, when written."""
    if not (ROOT / RESULTS / "rebuild_precision.json").exists():
        return (
            "No rebuild on another CPU is compared yet: `python benchmarks/rebuild_precision.py` writes the "
            "comparison of the committed report with the bf16 build kept in "
            f"`{RESULTS}/default_report_zen4_bf16.json`."
        )
    d = load(f"{RESULTS}/rebuild_precision.json")
    header = [
        "arm",
        "precision before",
        "test before",
        "precision after",
        "test after",
        "change",
        "beyond the seed ranges",
    ]
    rows = [
        [
            f"`{a['arm']}`",
            *[a.get(k, numbers.DASH) for k in header[1:5]],
            numbers.signed(a.get("change")),
            a.get("beyond the seed ranges", numbers.DASH),
        ]
        for a in d["arms"]
    ]
    conclusions = [
        [
            f"`{c['arm']}` against `{c['vs']}`",
            c.get("before") or numbers.DASH,
            c.get("after") or numbers.DASH,
            c.get("outcome"),
        ]
        for c in d.get("conclusions", [])
    ]
    before, after = d["before"], d["after"]
    text = (
        f"Before: `{before['file']}` ({before.get('machine')}). After: `{after['file']}` ({after.get('versions')}).\n\n"
    )
    text += table(header, rows)
    if conclusions:
        text += "\n\n" + table(["conclusion", "before", "after", "outcome"], conclusions)
    return text


# --- the shipped model -------------------------------------------------------------------

SHIPPED = "lmlib/pretrained/austen"


def _card_metrics() -> dict[str, float]:
    card = (ROOT / SHIPPED / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    return {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}


def _shipped_model() -> str:
    header, results, metrics = load(f"{SHIPPED}/config.json"), load(f"{SHIPPED}/results.json"), _card_metrics()
    methods = [name.removeprefix("test perplexity (").rstrip(")") for name in metrics if name.startswith("test")]
    rows = [
        [m, numbers.ppl(metrics.get(f"valid perplexity ({m})")), numbers.ppl(metrics[f"test perplexity ({m})"])]
        for m in methods
    ]
    run = header.get("run", {})
    size = (ROOT / SHIPPED / "model.safetensors").stat().st_size
    facts = [
        ["parameters", numbers.count(header.get("parameters") or results.get("parameters"))],
        ["vocabulary", f"{numbers.count(header.get('vocab_size'))} words"],
        ["`model.safetensors`", f"{fixed(size / 1e6)} MB ({header.get('dtype')})"],
        [
            "epochs",
            f"{numbers.epochs(results.get('epochs_run'))}, best validation at epoch {results.get('best_epoch')}, "
            f"stopped: {str(results.get('stopped')).replace('_', ' ')}",
        ],
        [
            "training",
            f"{fixed((results.get('wall_seconds') or 0) / 3600)} hours of wall time on "
            f"{results.get('resolved_device') or run.get('resolved_device')}"
            f"{' (' + run['machine'] + ')' if run.get('machine') else ''} in "
            f"{results.get('resolved_precision') or run.get('resolved_precision')}, torch {run.get('torch', '?')}",
        ],
        ["target", _shipped_target(results["test_ppl"])],
    ]
    return table(["method", "valid ppl", "test ppl"], rows) + "\n\n" + table(["", "the shipped model"], facts)


TARGET_TEST_PPL = 110.0  # the project's goal for the shipped model (static test perplexity)


def _shipped_target(test_ppl: float) -> str:
    verdict = "met" if test_ppl <= TARGET_TEST_PPL else f"missed by {numbers.ppl(test_ppl - TARGET_TEST_PPL)}"
    return f"static test perplexity at most {numbers.ppl(TARGET_TEST_PPL)}: {verdict}"


# --- benchmarks --------------------------------------------------------------------------


def _serving() -> str:
    d = load(f"{RESULTS}/serving.json")
    rows = [
        [
            r["model"],
            r["mode"],
            fixed(r["load_s"], 2),
            fixed(r["ms_per_word"]),
            numbers.ppl(r["test_ppl"]),
            numbers.percent(r["ppl_change"], 3, sign=True).replace("−0.000%", "+0.000%"),
        ]
        for r in d["rows"]
    ]
    chosen = ", ".join(f"{model}: {mode}" for model, mode in d["fastest_within_1pct"].items())
    text = table(["model", "mode", "load s", "ms/word", "test ppl", "change from fp32"], rows) + (
        f"\n\nFastest within 1% of fp32's perplexity: {chosen}; `auto` serves {d['lmlib_default']} on this machine. "
        f"The shipped folder holds {fixed(d['shipped_folder_bytes'] / 1e6)} MB. "
        f"Measured on {machine(d['machine'], d.get('threads'))}, "
        f"{load_average(d.get('load_avg_before'), d.get('load_avg_after'))}."
    )
    if "runs/austen" not in d["command"] or "--test-tokens" in d["command"]:
        text += (
            f"\n\nThis file is a development run (`{d['command']}`): its `--run-dir` is a training snapshot, not "
            "the finished `runs/austen`, and it scores part of the test split, so its rows show what each mode "
            "changes from fp32, not the shipped model's quality. The command above replaces it."
        )
    return text


def _cli_help() -> str:
    d = load(f"{RESULTS}/cli_help.json")
    rows = [[f"`{r['command']}`", fixed(r["median_s"], 2), fixed(r["max_s"], 2)] for r in d["rows"]]
    return table(["command", "median s", "slowest s"], rows) + (
        f"\n\n{d['repeat']} fresh interpreters each, target under {fixed(d['target_s'])} s for the help; "
        f"{machine(d['machine'])}, {load_average(d.get('load_avg'))}."
    )


TTQ_RECIPES = {
    "original": "original recipe at 256 (dropout 0.65, Adam 1e-3, batch 128, full softmax)",
    "cpu": "`cpu` preset (AWD regularisation, adaptive softmax, batch 32, Adam 5e-3)",
    "cpu-fp32": "`cpu` preset, forced to fp32",
}


def _time_to_quality() -> str:
    d = load(f"{RESULTS}/time_to_quality.json")
    rows = [
        [
            TTQ_RECIPES.get(r["recipe"], r["recipe"]),
            r["precision"],
            fixed(r["epochs"]),
            numbers.count(r["tokens_per_s"]),
            numbers.ppl(r["valid_ppl"]),
            numbers.ppl(r["test_ppl"]),
        ]
        for r in d["rows"]
    ]
    minutes = f"{d['minutes']:g}"
    return table(["recipe", "precision", f"epochs in {minutes} min", "tokens/s", "valid ppl", "test ppl"], rows) + (
        f"\n\nThe `cpu` preset's test perplexity is {numbers.percent(d['improvement'])} lower than the original "
        f"recipe's (target {numbers.percent(d['target_improvement'], 0)}: {'met' if d['met'] else 'missed'}). "
        f"{minutes} wall-clock minutes each, back to back; {machine(d['machine'])}, "
        f"{load_average(*[r.get('load_avg_before') for r in d['runs'].values()])} before each run."
    )


def _throughput() -> str:
    d = load(f"{RESULTS}/throughput.json")
    rows = [
        [
            r["size"].replace("x", "/"),
            r["variant"],
            r["precision"],
            r["batch"],
            numbers.count(r["tokens_per_s"]),
            f"{r['ratio']:.2f}x",
            numbers.percent(r["efficiency"], 0),
        ]
        for r in d["rows"]
    ]
    flops = ", ".join(f"{fixed(v, 0)} GFLOP/s {k}" for k, v in d["matmul_gflop_per_s"].items())
    met = ", ".join(
        f"{k.replace('_', ' ')} at least {v}: {'met' if d['met'][k] else 'missed'}" for k, v in d["targets"].items()
    )
    return table(["size", "variant", "precision", "batch x BPTT", "tokens/s", "vs reference", "efficiency"], rows) + (
        f"\n\nA large matmul reached {flops}. Targets: {met}. {d['rounds']} rounds; {machine(d['machine'])}, "
        f"{load_average(d.get('load_avg_before'), d.get('load_avg_after'))}."
    )


def _generation() -> str:
    d = load(f"{RESULTS}/generation.json")
    rows = [
        [
            r["new_tokens"],
            f"{fixed(r['reference_ms_per_token'])} ms",
            f"{fixed(r['lmlib_ms_per_token'])} ms",
            f"{r['ratio']:.1f}x",
        ]
        for r in d["rows"]
    ]
    return table(["new tokens", "original", "lmlib", "ratio"], rows) + (
        f"\n\nMilliseconds per new token at {d['size'].replace('x', '/')}, {numbers.count(d['vocab_size'])} words; "
        f"target {d['target_ratio']:g}x: {'met' if d['met'] else 'missed'}. {machine(d['machine'], d.get('threads'))}, "
        f"{load_average(d.get('load_avg_before'), d.get('load_avg_after'))}."
    )


def _memory() -> str:
    d = load(f"{RESULTS}/memory.json")
    rows = [
        [
            f"`{r['recipe']}`",
            r["width"],
            r["batch"],
            f"{numbers.count(r['rss_before_training_mib'])} MiB",
            f"{numbers.count(r['peak_training_mib'])} MiB",
        ]
        for r in d["rows"]
    ]
    return table(["recipe", "width", "batch", "before training", "peak while training"], rows) + (
        f"\n\nResident memory of a fresh process per recipe; {machine(d['machine'])}, "
        f"{load_average(d.get('load_avg'))}."
    )


def _tokenize() -> str:
    d = load(f"{RESULTS}/tokenize_speed.json")
    rows = [[r["step"], fixed(r["seconds"], 2), r.get("target") or ""] for r in d["rows"]]
    return table(["step", "seconds", "target"], rows) + (
        f"\n\n{numbers.count(d['tokens'])} tokens, median of {d['repeat']} runs; {machine(d['machine'])}."
    )


def _ptb() -> str:
    d = load(f"{RESULTS}/ptb_zaremba_small.json")
    r, p = d["results"], d["published"]
    rows = [
        ["Zaremba et al. 2014, small (paper, Table 1)", numbers.ppl(p["valid_ppl"]), numbers.ppl(p["test_ppl"])],
        [
            "lmlib, preset `zaremba-small`",
            numbers.ppl(r["valid_ppl"]),
            f"**{numbers.ppl(r['test_ppl'])}** ({numbers.percent(d['relative_test_gap'], sign=True)})",
        ],
    ]
    return table(["model", "valid ppl", "test ppl"], rows) + (
        f"\n\nTrained by `{d['command']}`: {r['epochs_run']:g} epochs, {numbers.minutes(r['seconds'])} minutes "
        f"({d.get('note', '')}); {machine(d['machine'], threads='')}."
    )


def _transformer_vs_lstm() -> str:
    d = load(f"{RESULTS}/transformer_vs_lstm.json")
    rows = [
        [
            r["model"],
            numbers.count(r["parameters"]),
            fixed(r["epochs"]),
            numbers.count(r["train_tokens_per_s"]),
            numbers.count(r["eval_tokens_per_s"]),
            numbers.ppl(r["valid_ppl"]),
            numbers.ppl(r["test_ppl"]),
        ]
        for r in d["rows"]
    ]
    lstm, transformer = d["rows"]
    runs = [
        f"the {name} used {fixed(run['cpu_s'], 0)} CPU seconds of its {fixed(run['wall_s'], 0)} wall seconds"
        for name, run in (("LSTM", d["runs"]["cpu"]), ("Transformer", d["runs"]["transformer"]))
    ]
    return table(
        ["model", "parameters", "epochs", "train tokens/s", "eval tokens/s", "valid ppl", "test ppl"], rows
    ) + (
        f"\n\nWinner: {d['winner']}. The LSTM's test perplexity is "
        f"{numbers.percent(1 - lstm['test_ppl'] / transformer['test_ppl'])} lower; it trains "
        f"{lstm['train_tokens_per_s'] / transformer['train_tokens_per_s']:.1f}x and evaluates "
        f"{lstm['eval_tokens_per_s'] / transformer['eval_tokens_per_s']:.1f}x as fast; parameters differ by "
        f"{numbers.percent(d['parameter_gap'])}. {d['minutes']:g} minutes each, one after the other; "
        f"{machine(d['machine'], d.get('threads'))}; {'; '.join(runs)} "
        f"({load_average(*[r['load_before'] for r in d['rows']], *[r['load_after'] for r in d['rows']])})."
    )


def _settings(settings) -> str:
    if not settings:
        return ""
    if all(isinstance(v, dict) for v in settings.values()):
        return "; ".join(f"{k}: {_settings(v)}" for k, v in settings.items())
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())


def test_time(model: str) -> Callable[[], str]:
    def render() -> str:
        d = load(f"{RESULTS}/test_time_eval.json")
        rows = [
            [
                ("" if r["method"] == "static" else "+ ") + r["method"],
                numbers.ppl(r["valid_ppl"]),
                numbers.ppl(r["test_ppl"]),
                numbers.percent(r["change"], sign=True) if r["change"] else "",
                f"{fixed(r['seconds'])} s",
                fixed(r["cost_ratio"]),
                _settings(r["settings"]),
            ]
            for r in d["rows"]
            if r["model"] == model
        ]
        run = d["models"][model]
        done = run["results"]
        targets = "; ".join(
            _target(name, t) for name, t in d["targets"].items() if name.startswith("ptb") == (model == "ptb")
        )
        return table(
            ["method", "valid ppl", "test ppl", "change", "test pass", "x static", "settings (tuned on valid)"], rows
        ) + (
            f"\n\nThe model: `{run['run_dir']}`, {numbers.epochs(done['epochs_run'])} epochs, "
            f"{numbers.count(done['parameters'])} parameters, trained in {done.get('resolved_precision')}. "
            f"Targets: {targets}. {machine(d['machine'], d.get('threads'))}, "
            f"{load_average(d.get('load_avg_end'))} at the end."
        )

    return render


def _target(name: str, t: dict) -> str:
    """One target of test_time_eval.json: '... 27.4% (at least 10%): met'."""
    label, met = name.removeprefix("embedded_").removeprefix("ptb_").replace("_", " "), "met" if t["met"] else "missed"
    if isinstance(t.get("measured"), dict):
        measured = ", ".join(f"{k} {numbers.ppl(v)}" for k, v in t["measured"].items())
        return f"{label}: {measured} against the published static {numbers.ppl(t.get('published_static'))}: {met}"
    if name.endswith("_gain"):
        return f"{label} {numbers.percent(t['measured'])} (at least {numbers.percent(t['target'], 0)}): {met}"
    return f"{label} {fixed(t['measured'], 2)} (at least {fixed(t['target'], 2)}): {met}"


def _ddp() -> str:
    d = load(f"{RESULTS}/ddp_throughput.json")
    sizes: dict[str, dict[str, dict]] = {}
    for r in d["rows"]:
        sizes.setdefault(r["preset"], {})[r["variant"]] = r
    variants = list(dict.fromkeys(r["variant"] for r in d["rows"]))
    rows = [
        [f"`{preset}`", *[f"{numbers.count(v[x]['tokens_per_s'])} ({v[x]['vs_1x1']:.2f}x)" for x in variants]]
        for preset, v in sizes.items()
    ]
    agree = d["agree"]["agree_us_per_step"] / 1000
    start, end = d["load_average"]["start"], d["load_average"]["end"]
    return table(["preset size", *variants], rows) + (
        f"\n\nTraining tokens per second, one epoch of a corpus slice, median of {d['rounds']}; the ranks' per-step "
        f"agreement cost {fixed(agree)} ms a step. {machine(d['machine'])}, {load_average(start, end)}."
    )


def _load_test() -> str:
    d = load(f"{RESULTS}/load_test.json")
    server = d["server_counts"]
    refused_leaving = server["refused"] - d["refused_503"]
    dropped = d["abandoned_sent"] - refused_leaving - server["abandoned"]
    cpu = d["cpu_seconds"]
    rows = [
        [
            "clients",
            f"{d['clients']} posting `/generate` ({d['max_new_tokens']} new tokens), {d['abandoning_clients']} "
            f"hanging up at once, {d['slow_clients']} sending a byte at a time",
        ],
        ["completed", f"{numbers.count(d['requests'])} in {fixed(d['seconds'])} s ({fixed(d['requests_per_s'])}/s)"],
        ["latency", f"p50 {fixed(d['p50_ms'], 0)} ms, p95 {fixed(d['p95_ms'], 0)} ms"],
        ["refused with 503", numbers.count(d["refused_503"])],
        ["other errors", numbers.count(d["errors"])],
        [
            "hung-up requests",
            f"{numbers.count(d['abandoned_sent'])}: {refused_leaving} refused, {server['abandoned']} "
            f"stopped while queued or between words, {numbers.count(dropped)} dropped before the app",
        ],
        ["slow clients", f"{d['slow_served']} of {d['slow_requests']} served"],
        [
            "`/health`",
            f"p50 {fixed(d['health_p50_ms'], 0)} ms, p99 {fixed(d['health_p99_ms'], 0)} ms, "
            f"slowest {fixed(d['health_max_ms'], 0)} ms ({d['health_probes']} probes)",
        ],
        [
            "the machine",
            f"{fixed(cpu['others'])} of {fixed(cpu['machine'])} CPU seconds went to other processes; "
            f"load average {fixed(d['load_avg_before'][0])} before, up to {fixed(d['load_avg_max_during'])}",
        ],
    ]
    return table(["", "measured"], rows) + f"\n\n{d['server']}; {machine(d['machine'])}."


def _generation_latency() -> str:
    d = load(f"{RESULTS}/generation_latency.json")
    rows = [[r["step"], r["words"], f"{fixed(r['median_ms'])} ms", f"{fixed(r['p95_ms'])} ms"] for r in d["rows"]]
    return table(["what", "words", "median", "p95"], rows) + (
        f"\n\nThe run `{d['run']}` (the `cpu` preset), {d['repeat']} repeats; {machine(d['machine'])}, "
        f"{load_average(d.get('load_avg_before'), d.get('load_avg_after'))}."
    )


def _gpu() -> str:
    path = ROOT / RESULTS / "gpu.json"
    if not path.exists():
        return "No `benchmarks/results/gpu.json` yet: `bash benchmarks/gpu.sh` has not run on a GPU."
    d = load(f"{RESULTS}/gpu.json")
    rows = [
        [
            r.get("variant"),
            r.get("precision"),
            fixed(r.get("s_per_epoch")),
            numbers.count(r.get("tokens_per_s")),
            numbers.count(r.get("peak_gpu_mib")),
        ]
        for r in d.get("rows", [])
    ]
    check = d.get("agreement", {})
    return table(["variant", "precision", "s per epoch", "tokens/s", "peak GPU MiB"], rows) + (
        f"\n\nfp32 against {check.get('precision')}: losses {numbers.percent(check.get('relative_difference'), 2)} "
        f"apart (tolerance {numbers.percent(check.get('tolerance'), 0)}); passed: {d.get('passed')}; "
        f"{numbers.minutes(d.get('wall_seconds'))} minutes in all on {d.get('device')}."
    )


# --- the notebooks and Colab -------------------------------------------------------------

NOTEBOOKS = {
    "01_data_prep.ipynb": "corpus statistics, Zipf's law, frequent words, the prepared splits",
    "02_train_lstm.ipynb": "one training run: device, live progress, curves, test perplexity, samples",
    "03_compare_runs.ipynb": "every run in one table, curves on shared axes, an analysis computed from the numbers",
    "04_generation_panel.ipynb": "the generation panel (ipywidgets), on the shipped model until you train one",
    "05_sweep.ipynb": "a hyperparameter sweep with Optuna: trials, history, parameter importances",
}
REPO_LINE = re.compile(r'^\s*(?:REPOSITORY|LMLIB_REPO) = "(?P<url>https?://[^"]+)"', re.M)


def repository() -> tuple[str, str]:
    """The project's address and the file it is read from.

    In this order: [project.urls] in pyproject.toml, a `REPOSITORY = "..."` (or `LMLIB_REPO`)
    constant in the package, the `LMLIB_REPO` line of the notebooks' first cell.
    """
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("urls", {})
    for key in ("Repository", "Source", "Homepage"):
        if key in urls:
            return urls[key].rstrip("/"), "pyproject.toml"
    notebook = ROOT / "notebooks" / "01_data_prep.ipynb"
    for path in [*sorted((ROOT / "lmlib").rglob("*.py")), notebook]:
        text = path.read_text(encoding="utf-8")
        if path == notebook:  # the first code cell's source, as Python
            text = "".join(next(c for c in json.loads(text)["cells"] if c["cell_type"] == "code")["source"])
        if match := REPO_LINE.search(text):
            return match.group("url").rstrip("/"), str(path.relative_to(ROOT))
    raise MissingSource("no repository address: no [project.urls] in pyproject.toml, REPOSITORY or LMLIB_REPO")


def _notebooks() -> str:
    url, _ = repository()
    slug = url.removeprefix("https://github.com/")
    badge = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    rows = [
        [
            f"[`{name}`](notebooks/{name})",
            what,
            f"{badge}(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name})",
        ]
        for name, what in NOTEBOOKS.items()
    ]
    text = (
        table(["notebook", "what", "Colab"], rows)
        + f"\n\nThe badges open `{url}`, the project's address as the package records it."
    )
    if "OWNER" in url:
        text += (
            " That address is a placeholder until the project is published: the badges and the notebooks' "
            "installer point there, so for now set `LMLIB_REPO` in a notebook's first cell to your fork."
        )
    return text


COLAB_PACKAGES = (
    "ipywidgets",
    "widgetsnbextension",
    "ipykernel",
    "ipython",
    "notebook",
    "nbformat",
    "nbclient",
    "nbconvert",
    "numpy",
    "pandas",
    "matplotlib",
    "traitlets",
    "jupyter_client",
    "pytest",
    "pip",
)


def _colab_versions() -> str:
    pins = {}
    for line in (ROOT / ".ci/colab-constraints.txt").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if version and not line.startswith("#"):
            pins[name.strip().lower()] = version.strip()
    versions = ", ".join(f"{name} {pins[name]}" for name in COLAB_PACKAGES if name in pins)
    return f"Colab's versions, from its own `pip freeze` (googlecolab/backend-info): {versions}."


BLOCKS: dict[str, Block] = {
    "default-report": report_block("reports/default"),
    "converged-report": report_block("reports/converged"),
    "default-report-other-cpu": Block(
        (f"{RESULTS}/rebuild_precision.json",),
        "python benchmarks/rebuild_precision.py",
        _rebuild_on_another_cpu,
        required=False,
    ),
    "shipped-model": Block(
        (f"{SHIPPED}/config.json", f"{SHIPPED}/results.json", f"{SHIPPED}/README.md"),
        "python -m lmlib export --run-dir runs/austen --to lmlib/pretrained/austen --dtype fp16",
        _shipped_model,
    ),
    "serving": Block(
        (f"{RESULTS}/serving.json",),
        "python benchmarks/serving.py --model austen --run-dir runs/austen "
        '--modes "fp32,fp16 weights,bf16 weights,int8"',
        _serving,
    ),
    "cli-help": Block((f"{RESULTS}/cli_help.json",), "python benchmarks/cli_help.py", _cli_help),
    "time-to-quality": Block(
        (f"{RESULTS}/time_to_quality.json",), "python benchmarks/time_to_quality.py", _time_to_quality
    ),
    "throughput": Block((f"{RESULTS}/throughput.json",), "python benchmarks/throughput.py --rounds 9", _throughput),
    "generation": Block((f"{RESULTS}/generation.json",), "python benchmarks/generation.py --threads 1", _generation),
    "memory": Block((f"{RESULTS}/memory.json",), "python benchmarks/memory.py", _memory),
    "tokenize-speed": Block((f"{RESULTS}/tokenize_speed.json",), "python benchmarks/tokenize_speed.py", _tokenize),
    "ptb-reproduction": Block((f"{RESULTS}/ptb_zaremba_small.json",), "python benchmarks/ptb_reproduction.py", _ptb),
    "transformer-vs-lstm": Block(
        (f"{RESULTS}/transformer_vs_lstm.json",),
        "python benchmarks/transformer_vs_lstm.py --threads 1",
        _transformer_vs_lstm,
    ),
    "test-time-embedded": Block(
        (f"{RESULTS}/test_time_eval.json",), "python benchmarks/test_time_eval.py --threads 1", test_time("embedded")
    ),
    "test-time-ptb": Block(
        (f"{RESULTS}/test_time_eval.json",), "python benchmarks/test_time_eval.py --threads 1", test_time("ptb")
    ),
    "ddp-throughput": Block((f"{RESULTS}/ddp_throughput.json",), "python benchmarks/ddp_throughput.py", _ddp),
    "load-test": Block((f"{RESULTS}/load_test.json",), "python benchmarks/load_test.py", _load_test),
    "generation-latency": Block(
        (f"{RESULTS}/generation_latency.json",),
        "python benchmarks/generation_latency.py --run runs/cpu",
        _generation_latency,
    ),
    "gpu-check": Block((f"{RESULTS}/gpu.json",), "bash benchmarks/gpu.sh", _gpu, required=False),
    "notebooks": Block((), "", _notebooks),
    "colab-versions": Block((".ci/colab-constraints.txt",), "", _colab_versions),
}


def rewrite(text: str, blocks: dict[str, Block] = BLOCKS) -> tuple[str, list[str], list[str]]:
    """`text` with every generated block rendered again; the blocks that changed; those whose source is missing."""
    changed, missing = [], []

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in blocks:
            raise SystemExit(f"unknown numbers block {name!r}: add it to BLOCKS in scripts/docs_numbers.py")
        try:
            body = blocks[name].text().rstrip("\n") + "\n"
        except MissingSource as error:
            missing.append(f"{name}: {error}")
            return match.group(0)
        if body != match.group("body"):
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(fill, text), changed, missing


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    stale, absent = [], []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new, changed, missing = rewrite(text)
        where = path.relative_to(ROOT)
        stale += [f"{where}: {name}" for name in changed]
        absent += [f"{where}: {name}" for name in missing]
        if changed and not args.check:
            path.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "rewritten"
    lines = [f"{verb}: {s}" for s in stale] + [f"source missing, block left as it was: {s}" for s in absent]
    print("\n".join(lines) or "every generated block matches its source")
    return 1 if absent or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
