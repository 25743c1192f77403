"""Generation reads the same everywhere: one default temperature, and readable continuations.

Python (`Generator.generate`), the CLI, the notebook panel and the web page start from
lmlib.sampling's defaults; the text is always the prompt as given followed by its
continuation, whose pieces (one per token) are what the surprise colouring shows.
"""

from __future__ import annotations

import html
import inspect
import re

import pytest

from lmlib.apps.panel import GenerationPanel
from lmlib.apps.web import STATIC, Limits, parse_request
from lmlib.cli import build_parser
from lmlib.generate import Generator, continuation_pieces, readable
from lmlib.sampling import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE


def test_one_default_temperature_and_length_everywhere():
    for method in (Generator.generate, Generator.stream):
        parameters = inspect.signature(method).parameters
        assert parameters["temperature"].default == DEFAULT_TEMPERATURE
        assert parameters["max_new_tokens"].default == DEFAULT_MAX_NEW_TOKENS
    cli = build_parser().parse_args(["generate", "--model", "austen"])
    assert (cli.temperature, cli.max_new_tokens) == (DEFAULT_TEMPERATURE, DEFAULT_MAX_NEW_TOKENS)
    panel = GenerationPanel(lambda *a, **k: iter(()), lambda *a: [], background=False)
    assert (panel.temperature.value, panel.length.value) == (DEFAULT_TEMPERATURE, DEFAULT_MAX_NEW_TOKENS)
    request = parse_request(b'{"prompt": "she"}', Limits())
    assert (request.temperature, request.max_new_tokens) == (DEFAULT_TEMPERATURE, DEFAULT_MAX_NEW_TOKENS)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    slider = re.search(r'<input id="temperature"[^>]*value="([\d.]+)"', page)
    shown = re.search(r'<output id="temperature_value"[^>]*>([\d.]+)<', page)
    length = re.search(r'<input id="max_new_tokens"[^>]*value="(\d+)"', page)
    assert float(slider.group(1)) == float(shown.group(1)) == DEFAULT_TEMPERATURE
    assert int(length.group(1)) == DEFAULT_MAX_NEW_TOKENS


@pytest.mark.parametrize(
    "prompt, tokens, continuation",
    [
        ("It is a truth universally acknowledged", [",", "that", "a", "man", "."], ", that a man."),
        ("She said", ["'", "don", "'", "t", "go", "'", "."], " 'don't go'."),
        ("It was late.", ["she", "left"], " She left"),
        ("It was late. ", ["she", "left"], "She left"),  # the prompt's own space separates
        ("", ["she", "left", "."], "She left."),
        ('"She', ["left"], " left"),  # basic_english drops '"', the prompt keeps it
        ("mr. darcy", ["said", "."], " said."),
    ],
)
def test_the_continuation_appended_to_the_prompt_is_the_text(prompt, tokens, continuation):
    pieces = continuation_pieces(prompt, tokens)
    assert len(pieces) == len(tokens) and "".join(pieces) == continuation
    assert readable(prompt, tokens) == prompt + continuation


def test_generate_gives_prompt_plus_continuation(generator):
    for prompt in ("it is a truth universally acknowledged", "Mr. Darcy's  house", ""):
        result = generator.generate(prompt, 20, seed=2)
        assert result.text == prompt + result.continuation
        assert result.continuation == "".join(generator.pieces(prompt, result.tokens))


def test_the_panels_surprise_colouring_shows_the_plain_texts_words(generator):
    stream = lambda run, prompt, **kw: generator.stream(prompt, **kw)  # noqa: E731
    pieces = lambda run, prompt, tokens: generator.pieces(prompt, tokens)  # noqa: E731
    panel = GenerationPanel(stream, lambda *a: [], pieces=pieces, background=False)
    panel.prompt.value, panel.random_seed.value, panel.length.value = "she said that", False, 30
    panel.generate_button.click()
    plain = html.unescape(re.sub(r"<[^>]+>", "", panel.output.value))
    panel.colour.value = True
    coloured = panel.output.value
    assert html.unescape(re.sub(r"<[^>]+>", "", coloured)) == plain == panel.text
    assert len(re.findall(r"<span title=", coloured)) == len(panel.tokens)
    assert " , " not in plain and " ." not in plain  # readable, not raw tokens
