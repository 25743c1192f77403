"""The report shows a corpus's text as text, runs only its own scripts, replaces only its own folders (issue 20).

Book titles are the corpus's file names, and the gap analysis puts them into Markdown, which
lets HTML through: a file named `3 <b onmouseover=alert(13)>x.txt` appeared as a live tag in
report.html. The report now escapes them and carries a Content-Security-Policy like the web
app's; and it replaces reports/<profile>/ (or removes reports/<profile>.tmp/) only when that
folder is a report it built.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from test_reliability import assert_one_line_error, lmlib

from lmlib.errors import LMError
from lmlib.presets import get_preset
from lmlib.report.html import Section, TitlePage, build_report, escape_markdown
from lmlib.training.loop import train

EVIL = "3 <b onmouseover=alert(13)>x.txt"
LINES = [" ".join(f"w{(i * 7 + j) % 23}" for j in range(12)) for i in range(40)]


def notebook_with(path: Path, outputs: list, widgets: dict | None = None) -> Path:
    """A notebook like an executed notebook 03: a heading, then one cell showing `outputs`."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("Markdown(gap_analysis(study))", execution_count=1)
    cell.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell("# 3 · Compare the runs\n## 4. Why is test above valid?"), cell]
    if widgets:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": widgets}
    nbformat.write(nb, path)
    return path


def test_a_corpus_file_name_is_escaped_in_the_reports_gap_section(tmp_path):
    from lmlib.report.gap import gap_study
    from lmlib.report.gap_text import gap_analysis, segment_table

    books = tmp_path / "books"
    books.mkdir()
    for name in ("1 a.txt", "2 b.txt", EVIL):  # the 70 % cut falls inside the third: it is named in the text
        (books / name).write_text("\n".join(LINES) * 2 + "\n")
    config = get_preset("smoke", corpus=str(books), epochs=1, emb_dim=8, hid_dim=8, batch_size=4, bptt=8,
                        subset_tokens=None, min_freq=1)  # fmt: skip
    train(config, tmp_path / "run", progress=False)
    study = gap_study(tmp_path / "run", window=200, device="cpu")
    text = gap_analysis(study)
    assert "3 &lt;b onmouseover=alert(13)&gt;x.txt" in text and EVIL not in text

    outputs = [nbformat.v4.new_output("display_data", {"text/markdown": text, "text/plain": "<Markdown>"}),
               nbformat.v4.new_output("execute_result", {"text/html": segment_table(study).to_html(),
                                                         "text/plain": "table"}, execution_count=1)]  # fmt: skip
    section = notebook_with(tmp_path / "03_compare_runs.ipynb", outputs)
    page = build_report(tmp_path / "report", TitlePage("Mine", analysis_md=f"- **{escape_markdown(EVIL)}**"),
                        [Section(section)])  # fmt: skip
    html = page.read_text(encoding="utf-8")
    assert "<b onmouseover" not in html and "onmouseover=alert(13)&gt;x.txt" in html
    assert html.count("3 &lt;b onmouseover=alert(13)&gt;x.txt") >= 3  # the analysis, the table, the title page


def test_markdown_escaping_keeps_text_as_it_is():
    from lmlib.report.html import markdown

    for name in (EVIL, "a_b*c*", "[link](http://x)", "`code` | ~strike~ $x$", "&amp; <!-- -->", "\\"):
        shown = re.sub(r"<[^>]+>", "", markdown(escape_markdown(name))).strip()
        assert shown == name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), name


def test_the_report_page_has_a_content_security_policy_and_no_inline_handler(tmp_path):
    page = build_report(tmp_path / "report", TitlePage("Mine"), [])
    html = page.read_text(encoding="utf-8")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    policy = {part.split()[0]: part.split()[1:] for part in csp.split("; ")}
    assert policy["default-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "*" not in " ".join(csp.split())
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handler: the policy would block it
    assert html.index("Content-Security-Policy") < html.index("<style>")  # before anything it governs


def test_the_report_renders_offline_under_its_policy(tmp_path):
    """Widgets drawn, figures shown, the code button works, and the browser reports no blocked script."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    pytest.importorskip("playwright")
    import ipywidgets
    from ipywidgets.embed import embed_data
    from playwright.sync_api import sync_playwright

    from lmlib.report.browser import launch

    data = embed_data(views=[ipywidgets.IntProgress(value=3, max=10, description="epoch")])
    view = nbformat.v4.new_output("display_data", {"application/vnd.jupyter.widget-view+json": data["view_specs"][0],
                                                   "text/plain": "progress"})  # fmt: skip
    section = notebook_with(tmp_path / "02.ipynb", [view], data["manager_state"])
    page = build_report(tmp_path / "report", TitlePage("Mine", figure_png=_png()), [Section(section)])
    console = []
    with sync_playwright() as p:
        browser = launch(p)
        tab = browser.new_page()
        tab.on("console", lambda m: console.append(m.text))
        tab.on("pageerror", lambda e: console.append(str(e)))
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.wait_for_selector(".widget-subarea .widget-hprogress", timeout=20_000)
        images = tab.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        tab.click("#toggle-code")
        shown = tab.evaluate("document.body.classList.contains('show-code')")
        browser.close()
    assert images == 1 and shown
    assert not [m for m in console if "Content Security Policy" in m], console


def _png() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


# -- the report replaces only its own folders ---------------------------------------------------


@pytest.mark.parametrize("folder", ["smoke", "smoke.tmp"])
def test_the_report_keeps_a_folder_that_is_not_a_report(tmp_path, folder):
    mine = tmp_path / "out" / folder
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    proc = lmlib("report", "--profile", "smoke", "--reports-dir", "out", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "is not a report lmlib built (notes.txt)")
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [folder]  # nothing built beside it either


def stand_in(path: Path, source: str) -> None:
    """A notebook that runs in a second (a parameters cell, then `source`), for the pipeline's folder handling."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})  # fmt: skip
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"),
                nbformat.v4.new_code_cell("runs_root = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]  # fmt: skip
    nbformat.write(nb, path)


def test_the_report_replaces_its_own_report_and_removes_its_own_failed_build(tmp_path):
    from lmlib.report.pipeline import run_pipeline

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("01_data_prep", "02_train_lstm", "03_compare_runs"):
        stand_in(notebooks / f"{name}.ipynb", "print('ok')")
    kwargs = dict(reports_dir=tmp_path / "reports", runs_root=tmp_path / "runs", notebooks_dir=notebooks,
                  params_dir=tmp_path / "params", log=lambda *a: None)  # fmt: skip
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "tiny.yaml").write_text('{"title": "Tiny", "runs": [{"name": "a", "preset": "smoke"}]}')
    profile = str(tmp_path / "params" / "tiny.yaml")
    first = run_pipeline(profile, **kwargs)
    stand_in(notebooks / "03_compare_runs.ipynb", "1 / 0")
    with pytest.raises(LMError, match="ZeroDivisionError"):
        run_pipeline(profile, **kwargs)
    assert (tmp_path / "reports" / "tiny.tmp" / "notebooks").is_dir()  # the failed build, kept to inspect
    stand_in(notebooks / "03_compare_runs.ipynb", "print('again')")
    again = run_pipeline(profile, **kwargs)  # its own report replaced, its own failed build removed
    assert again == first and "again" in again.read_text()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["tiny"]
    (tmp_path / "reports" / "tiny" / "notebooks" / "mine.py").write_text("x")  # not a notebook: not a report's
    with pytest.raises(LMError, match=r"tiny is not a report lmlib built \(notebooks\)"):
        run_pipeline(profile, **kwargs)
    assert (tmp_path / "reports" / "tiny" / "notebooks" / "mine.py").read_text() == "x"
