"""Real-browser tests: headless Debian Chromium drives the Flask page and the panel under Voila.

Skipped when /usr/bin/chromium is missing, except with LMLIB_REQUIRE_BROWSER=1 (CI), where
that is a failure. Set LMLIB_SCREENSHOTS=reports/screenshots to keep the screenshots.
"""

from __future__ import annotations

import re

import pytest
from lm_fixtures import screenshot_dir, serving

from lmlib.apps.web import Limits, create_app
from lmlib.generate import INTERACTIVE_MAX_NEW_TOKENS

VIEWPORT = {"width": 900, "height": 760}


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    try:
        yield page
    finally:
        context.close()


def set_range(page, selector: str, key: str, presses: int = 0, then: str = "ArrowRight") -> str:
    """Move a range input with the keyboard as a person would; returns its new value."""
    slider = page.locator(selector)
    slider.focus()
    slider.press(key)
    for _ in range(presses):
        slider.press(then)
    return slider.input_value()


def generate_on_page(page) -> dict:
    """Click Generate, wait for the spinner to go, return what the page posted."""
    from playwright.sync_api import expect

    with page.expect_request("**/generate/stream") as posted:
        page.get_by_role("button", name="Generate").click()
    expect(page.locator("#spinner")).to_be_hidden(timeout=60_000)
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    return posted.value.post_data_json


def test_flask_page_generates_with_the_sliders(page, web_server, tiny_run, tmp_path):
    from playwright.sync_api import expect

    page.goto(web_server)
    expect(page.locator("#model-name")).to_contain_text(f"Model: {tiny_run.name}")
    expect(page.locator("#max_new_tokens")).to_have_attribute("max", str(INTERACTIVE_MAX_NEW_TOKENS))
    page.locator("#prompt").fill("Elizabeth walked to the window and")
    assert set_range(page, "#max_new_tokens", "Home", presses=5) == "35"
    assert set_range(page, "#temperature", "End", presses=2, then="ArrowLeft") == "0.9"
    expect(page.locator("#max_new_tokens_value")).to_have_text("35")
    expect(page.locator("#temperature_value")).to_have_text("0.90")
    posted = generate_on_page(page)
    assert posted["max_new_tokens"] == 35 and "max_seq_len" not in posted  # the old name is for old clients
    assert posted["temperature"] == pytest.approx(0.9)
    expect(page.locator("#info")).to_contain_text("words in")
    text = page.locator("#output").inner_text()
    assert text.startswith("Elizabeth walked to the window and") and len(text.split()) > 7  # a "," may follow
    words = int(re.match(r"(\d+) words", page.locator("#info").inner_text()).group(1))
    assert 1 <= words <= 35
    assert page.locator("#error").is_hidden() and page.dialogs == []
    page.locator("main").screenshot(path=str(screenshot_dir(tmp_path) / "web_page.png"))


def test_flask_page_length_slider_stops_at_the_servers_limit(page, generator):
    from playwright.sync_api import expect

    with serving(create_app(generator, limits=Limits(max_new_tokens=40), name="capped")) as url:
        page.goto(url)
        expect(page.locator("#model-name")).to_contain_text("Model: capped")
        assert set_range(page, "#max_new_tokens", "End") == "40"
        expect(page.locator("#max_new_tokens_value")).to_have_text("40")
        assert generate_on_page(page)["max_new_tokens"] == 40
        expect(page.locator("#info")).to_contain_text("words in")
        assert page.locator("#error").is_hidden()


def test_flask_page_in_surprise_mode_shows_the_same_readable_text_on_the_shipped_model(page, tmp_path):
    """The page's first screen as a newcomer meets it (`lmlib serve`: the shipped model): the coloured view
    reads exactly as the plain one (prompt + continuation), each word carrying its surprise."""
    from playwright.sync_api import expect

    from lmlib.generate import Generator

    with serving(create_app(Generator.from_pretrained("austen", "cpu"), name="austen")) as url:
        page.goto(url)
        expect(page.locator("#model-name")).to_contain_text("Model: austen")
        page.locator("#prompt").fill("It is a truth universally acknowledged")
        page.locator("#advanced summary").click()
        page.locator("#seed").fill("1")
        generate_on_page(page)
        expect(page.locator("#info")).to_contain_text("words in")
        plain = page.locator("#output").inner_text()
        page.locator("#colour").check()
        generate_on_page(page)
        expect(page.locator("#info")).to_contain_text("words in")
        words = int(re.match(r"(\d+) words", page.locator("#info").inner_text()).group(1))
        expect(page.locator("#output span.token[title$=' bits']")).to_have_count(words)
        assert page.locator("#output").inner_text() == plain
        assert plain.startswith("It is a truth universally acknowledged") and " ," not in plain and " ." not in plain
        page.locator("main").screenshot(path=str(screenshot_dir(tmp_path) / "web_page_surprise.png"))


def test_flask_page_shows_script_prompts_as_text(page, web_server):
    from playwright.sync_api import expect

    page.goto(web_server)
    page.locator("#advanced summary").click()
    page.locator("#colour").check()  # the word-by-word (coloured) view keeps the streamed spans
    attack = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2; alert(1)">'
    page.locator("#prompt").fill(attack)
    generate_on_page(page)
    expect(page.locator("#info")).to_contain_text("words in")
    assert page.locator("#output").inner_text().startswith(attack)
    assert page.locator("#output script, #output img").count() == 0
    assert page.evaluate("window.pwned") is None and page.dialogs == []


def test_flask_page_shows_errors_in_the_page(page, web_server):
    from playwright.sync_api import expect

    page.goto(web_server)
    page.locator("#prompt").fill("   ")  # passes the form's `required`, refused by the server
    generate_on_page(page)
    expect(page.locator("#error")).to_have_text(re.compile("prompt is required"))
    assert page.dialogs == [] and "{" not in page.locator("#error").inner_text()


def test_voila_panel_generates_with_the_sliders(page, voila_server, tmp_path):
    from playwright.sync_api import expect

    page.goto(voila_server)
    generate = page.get_by_role("button", name="Generate")
    expect(generate).to_be_visible(timeout=90_000)  # the kernel runs the notebook first
    for label, key in (("Temperature", "Home"), ("Max length", "Home")):
        row = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label))
        row.locator(".noUi-handle").focus()
        page.keyboard.press(key)
        page.keyboard.press("ArrowRight")
    temperature = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="Temperature"))
    expect(temperature.locator(".widget-readout")).to_have_text("0.15")
    length = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="Max length"))
    expect(length.locator(".widget-readout")).to_have_text("15")
    generate.click()
    status = page.get_by_text(re.compile(r"done: \d+ words"))
    expect(status).to_be_visible(timeout=60_000)
    words, temp = re.search(r"done: (\d+) words, temperature ([\d.]+)", status.inner_text()).groups()
    assert 1 <= int(words) <= 15 and temp == "0.15"  # the kernel saw both slider moves
    text = page.locator(".lm-output").inner_text()
    assert text.startswith("It is a truth universally acknowledged") and len(text.split()) > 6
    expect(page.locator(".lm-dist")).to_contain_text("Next word")
    page.get_by_text("colour by surprise").click()
    expect(page.locator(".lm-output span[title$=' bits']")).to_have_count(int(words))
    page.screenshot(path=str(screenshot_dir(tmp_path) / "panel_voila.png"), full_page=True)


def test_a_missing_browser_skips_here_and_fails_in_ci(monkeypatch, tmp_path):
    import lm_fixtures

    monkeypatch.setattr(lm_fixtures, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("LMLIB_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        lm_fixtures.require_browser()
    monkeypatch.setenv("LMLIB_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="LMLIB_REQUIRE_BROWSER=1"):
        lm_fixtures.require_browser()


class CasedWords:
    """A look-alike generator: fixed tokens and a casing table, so the page's words are known."""

    casing = {"darcy": "Darcy", "mr": "Mr"}
    vocab = None

    def stream(self, prompt, **keywords):
        from lmlib.generate import GeneratedToken

        for token in ["and", "mr", ".", "darcy", "smiled", "."]:
            yield GeneratedToken(token, 2.0, self.casing.get(token, token))


def test_flask_page_shows_words_in_the_runs_casing(page):
    from playwright.sync_api import expect

    with serving(create_app(CasedWords(), name="cased")) as url:
        page.goto(url)
        page.locator("#prompt").fill("elizabeth said")
        generate_on_page(page)
        expect(page.locator("#info")).to_contain_text("6 words in")
        plain = page.locator("#output").inner_text()
        assert plain == "elizabeth said and Mr. Darcy smiled."  # the prompt as typed, then readable text
        page.locator("#advanced summary").click()
        page.locator("#colour").check()  # the word-by-word view colours the same readable words
        generate_on_page(page)
        expect(page.locator("#info")).to_contain_text("6 words in")
        assert page.locator("#output .token").all_inner_texts() == ["and", "Mr", ".", "Darcy", "smiled", "."]
        assert page.locator("#output").inner_text() == plain  # not "and mr . darcy smiled ."
