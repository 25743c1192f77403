"""The ipywidgets panel, driven headless: set `.value`, call `.click()`, read the widgets."""

from __future__ import annotations

import html
import re

import pytest
import torch

from lmlib.apps.panel import GenerationPanel, distribution_html, panel_for_runs, surprise_colour, tokens_html
from lmlib.errors import LMError


def make_panel(generator, **options):
    stream = lambda run, prompt, **kw: generator.stream(prompt, **kw)  # noqa: E731
    next_words = lambda run, prompt, k: generator.next_word_distribution(prompt, k=k)  # noqa: E731
    return GenerationPanel(stream, next_words, **{"background": False, **options})


def test_constructing_displays_nothing(generator, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    panel = make_panel(generator)
    assert shown == [] and panel.output.value == "" and panel.tokens == []
    assert VIEW in panel._repr_mimebundle_()


VIEW = "application/vnd.jupyter.widget-view+json"


def widget_view(widget) -> dict:
    """The widget-view reference `widget` itself displays with: ipywidgets 8 returns it from
    `_repr_mimebundle_`, ipywidgets 7 (Colab's 7.7.1) sends it from `_ipython_display_`."""
    if hasattr(widget, "_repr_mimebundle_"):
        return widget._repr_mimebundle_()[VIEW]
    import ipywidgets.widgets.widget as module

    shown, original = [], module.display
    module.display = lambda data, **kw: shown.append(data)
    try:
        widget._ipython_display_()
    finally:
        module.display = original
    return shown[0][VIEW]


def test_the_panel_displays_in_ipython_with_ipywidgets_7_and_8(generator):
    """IPython's display machinery shows the panel as its widget (this failed under ipywidgets 7.7.1)."""
    import ipywidgets
    from IPython.core.interactiveshell import InteractiveShell

    panel = make_panel(generator)
    data, _ = InteractiveShell.instance().display_formatter.format(panel)
    assert data[VIEW] == widget_view(panel.widget) == {
        "version_major": 2, "version_minor": 0, "model_id": panel.widget.model_id
    }, ipywidgets.__version__  # fmt: skip
    assert data["text/plain"].startswith("GenerationPanel(runs=['model'])")


def test_generate_button_uses_the_sliders(generator):
    panel = make_panel(generator)
    panel.prompt.value = "Mr Darcy said"
    panel.length.value, panel.temperature.value = 20, 0.6
    panel.random_seed.value = False
    panel.seed.value = 11
    panel.generate_button.click()
    assert 1 <= len(panel.tokens) <= 20
    assert panel.status.value.startswith("done") and "seed 11" in panel.status.value
    assert panel.text.lower().startswith("mr darcy said") and html.escape(panel.text) in panel.output.value
    again = list(panel.tokens)
    panel.generate_button.click()
    assert panel.tokens == again  # same seed, same words
    panel.temperature.value = 1.5
    panel.seed.value = 12
    panel.generate_button.click()
    assert panel.tokens != again


def test_a_random_seed_is_shown_and_replays(generator):
    panel = make_panel(generator)
    panel.length.value = 15
    panel.generate_button.click()
    drawn, tokens = panel.seed.value, list(panel.tokens)
    panel.random_seed.value = False
    assert panel.seed.disabled is False
    panel.generate_button.click()
    assert panel.seed.value == drawn and panel.tokens == tokens


def test_output_streams_word_by_word(generator):
    panel = make_panel(generator)
    seen = []
    panel.output.observe(lambda change: seen.append(change["new"]), "value")
    panel.random_seed.value, panel.length.value = False, 12
    panel.generate_button.click()
    assert len(seen) >= len(panel.tokens)  # one update per word, then the final text
    assert html.escape(panel.tokens[0]) in seen[0] and len(seen[0]) < len(seen[len(panel.tokens) - 1])


def test_stop_ends_a_long_generation(generator):
    produced = []

    def stream(run, prompt, **kw):
        for item in generator.stream(prompt, **kw):
            produced.append(item.token)
            if len(produced) == 3:
                panel.stop_button.click()  # as a person would, while it runs
            yield item

    panel = GenerationPanel(stream, lambda *a: [], background=True)
    panel.length.value = 300
    panel.generate_button.click()
    panel.wait(timeout=60)
    assert len(panel.tokens) == 2 and panel.status.value.startswith("stopped")
    assert panel.generate_button.disabled is False and panel.stop_button.disabled is True


def test_next_word_chart_follows_the_prompt(generator):
    panel = make_panel(generator)
    panel.prompt.value = "she was"
    words = generator.next_word_distribution("she was", k=10)
    chart = panel.distribution.value
    assert chart.count("background:#2b5d9b") == 10
    assert f"{100 * words[0][1]:.1f}%" in chart and words[0][0] in chart
    assert all(0 <= p <= 1 for _, p in words) and sum(p for _, p in words) <= 1 + 1e-6
    assert [p for _, p in words] == sorted((p for _, p in words), reverse=True)


def test_colour_by_surprise_and_escaping(generator):
    panel = make_panel(generator)
    panel.prompt.value = "<script>alert(1)</script> she"
    panel.random_seed.value, panel.length.value = False, 10
    panel.generate_button.click()
    assert "<script>" not in panel.output.value and "&lt;script&gt;" in panel.output.value
    panel.colour.value = True
    spans = re.findall(r'title="([\d.]+) bits" style="background:rgba\(220, 40, 20, ([\d.]+)\)"', panel.output.value)
    assert len(spans) == len(panel.tokens)
    for (bits, alpha), surprisal in zip(spans, panel.surprisals):
        assert float(bits) == pytest.approx(surprisal, abs=0.06)
        assert float(alpha) == pytest.approx(min(surprisal / 16, 1) * 0.65, abs=1e-3)


def test_run_picker_only_with_several_runs():
    calls = []

    def stream(run, prompt, **kw):
        calls.append(run)
        return iter(())

    single = GenerationPanel(stream, lambda *a: [], background=False)
    assert single.run.layout.display == "none"
    panel = GenerationPanel(stream, lambda *a: [], runs=["cpu", "awd"], background=False)
    assert panel.run.layout.display is None
    panel.run.value = "awd"
    panel.generate_button.click()
    assert calls == ["awd"]


def test_errors_show_in_the_panel_and_it_recovers():
    def stream(run, prompt, **kw):
        raise LMError("temperature must be between 0 and 2")
        yield  # a generator, as the real one is

    panel = GenerationPanel(stream, lambda *a: [], background=False)
    panel.generate_button.click()
    assert "temperature must be between" in panel.status.value
    assert panel.generate_button.disabled is False and panel.stop_button.disabled is True


def test_pure_helpers():
    assert surprise_colour(0) == "rgba(220, 40, 20, 0.000)"
    assert surprise_colour(32) == surprise_colour(16) == "rgba(220, 40, 20, 0.650)"
    assert tokens_html("<b>", [" &", "x"]) == '<div class="lm-output"><b>&lt;b&gt;</b> &amp;x</div>'
    assert distribution_html([]).endswith("</b></div>")


def test_panel_for_runs_follows_the_device_rule(tiny_run, monkeypatch):
    """`auto` unless told otherwise, as training: the GPU when there is one (stubbed here)."""
    from lmlib.training import runs

    asked = []
    monkeypatch.setattr(runs, "resolve_device", lambda name: asked.append(name) or torch.device("cpu"))
    panel_for_runs([tiny_run], background=False)
    panel_for_runs([tiny_run], device="cpu", background=False)
    assert asked == ["auto", "cpu"]


def test_panel_for_runs_loads_the_model_once(tiny_run):
    panel = panel_for_runs([tiny_run], background=False)
    assert panel.run.options == (tiny_run.name,) and "Next word" in panel.distribution.value
    panel.random_seed.value, panel.length.value = False, 10
    panel.generate_button.click()
    assert 1 <= len(panel.tokens) <= 10 and panel.text.lower().startswith("it is a truth")


def test_panel_for_runs_shows_words_in_the_runs_casing(tiny_run, generator):
    panel = panel_for_runs([tiny_run], background=False)
    panel.prompt.value = "mr. darcy said"
    labels = re.findall(r'overflow:hidden">([^<]*)</span>', panel.distribution.value)
    top = generator.next_word_distribution("mr. darcy said", k=10)
    assert labels == [html.escape(generator.word(token)) for token, _ in top]  # the chart's labels, cased
    panel.random_seed.value, panel.length.value = False, 20
    panel.generate_button.click()
    assert panel.text == "mr. darcy said" + "".join(panel.pieces)  # the prompt as typed, then readable text
    assert panel.text == generator.readable("mr. darcy said", panel.tokens)
    assert panel.words == [generator.word(token) for token in panel.tokens]  # tokens stay the model's
    plain = panel.output.value
    panel.colour.value = True
    shown = re.findall(r'bits" style="[^"]*">([^<]*)</span>', panel.output.value)
    assert shown == [html.escape(piece.strip()) for piece in panel.pieces]
    assert re.sub(r"<[^>]+>", "", panel.output.value) == re.sub(r"<[^>]+>", "", plain)  # the same words, coloured
