"""One HTML report from executed notebooks: title page, table of contents, one section each.

    reports/<profile>/
      report.html      title page (headline table + figure + analysis), contents, sections
      assets/          the vendored widget renderer (lmlib/report_assets), loaded by relative URL
      notebooks/       the executed notebooks the sections were rendered from

Code is hidden by default (a button shows it), figures are embedded as PNG data URIs, and
widgets (progress bars, the generation panel) are drawn from the state saved at execution
by the vendored @jupyter-widgets/html-manager: the page needs no network at all.
"""
from __future__ import annotations

import base64
import copy
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ASSETS = Path(__file__).resolve().parent / "report_assets"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_RENDERER = "assets/embed.js"

# Render only the cells (no <html>, no CSS, no CDN scripts): the report supplies its own.
_SECTION_TEMPLATE = """{%- extends 'lab/base.html.j2' -%}
{%- block header -%}{%- endblock header -%}
{%- block body_header -%}{%- endblock body_header -%}
{%- block body_footer -%}{%- endblock body_footer -%}
{%- block footer -%}{%- endblock footer -%}
"""


@dataclass(frozen=True)
class Section:
    """One executed notebook and the title it gets in the report (None: its own H1)."""

    notebook: Path
    title: str | None = None


@dataclass
class TitlePage:
    """What the first screen shows."""

    title: str
    facts: dict[str, str] = field(default_factory=dict)  # profile, date, machine, wall time ...
    headline: str = ""  # a sentence or two (Markdown)
    table_html: str = ""  # the comparison table
    figure_png: bytes | None = None  # the curves of every run
    analysis_md: str = ""  # the written analysis
    notes_md: str = ""


@dataclass(frozen=True)
class RenderedSection:
    anchor: str
    title: str
    body: str
    headings: list[tuple[int, str, str]]  # (level, id, text) of the H2s inside
    widget_state: dict


def render_section(notebook: nbformat.NotebookNode, anchor: str, title: str | None = None) -> RenderedSection:
    """HTML of one notebook's cells, its heading ids prefixed with `anchor` so sections never clash."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    notebook = drop_closed_widgets(notebook, state)
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({"section.html.j2": _SECTION_TEMPLATE})],
        template_file="section.html.j2",
    )
    body, _ = exporter.from_notebook_node(notebook)
    body = re.sub(r'(<h[1-6] id=")([^"]+)"', lambda m: f'{m.group(1)}{anchor}-{m.group(2)}"', body)
    body = re.sub(r'(<a class="anchor-link" href="#)([^"]+)"', lambda m: f'{m.group(1)}{anchor}-{m.group(2)}"', body)
    h1 = re.search(r'<h1 id="[^"]*">(.*?)(<a class="anchor-link".*?</a>)?</h1>', body, re.S)
    own_title = _text(h1.group(1)) if h1 else anchor
    if h1 and title:
        body = body[: h1.start(1)] + html.escape(title) + body[h1.end(1):]
    headings = [(2, m.group(1), _text(m.group(2))) for m in re.finditer(r'<h2 id="([^"]+)">(.*?)</h2>', body, re.S)]
    return RenderedSection(anchor, title or own_title, body, headings, dict(state))


def drop_closed_widgets(notebook: nbformat.NotebookNode, state: dict) -> nbformat.NotebookNode:
    """Remove outputs showing widgets that were closed before the notebook ended.

    A closed widget (e.g. a progress bar with leave=False) has no saved state, so it would
    render as an empty gap; its text fallback is the bar's first frame, which misleads.
    """
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _closed_widget(o, state)]
    return notebook


def _closed_widget(output, state: dict) -> bool:
    view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
    return view is not None and view.get("model_id") not in state


def build_report(out_dir: str | Path, page: TitlePage, sections: list[Section]) -> Path:
    """Write out_dir/report.html (and out_dir/assets/); return the report's path."""
    out_dir = Path(out_dir)
    rendered = [render_section(nbformat.read(s.notebook, as_version=4), f"s{i}", s.title)
                for i, s in enumerate(sections, 1)]
    state: dict = {}
    for section in rendered:
        state.update(section.widget_state)  # model ids are UUIDs: merging never collides
    copy_assets(out_dir / "assets")
    report = out_dir / "report.html"
    report.write_text(_page(page, rendered, state), encoding="utf-8")
    return report


def copy_assets(target: Path) -> None:
    """Copy the vendored widget renderer, its fonts and licences next to the report."""
    target.mkdir(parents=True, exist_ok=True)
    for path in ASSETS.iterdir():
        if path.is_file() and path.suffix != ".md":
            shutil.copy2(path, target / path.name)


def markdown(text: str) -> str:
    """Markdown to HTML with the renderer nbconvert itself uses."""
    from nbconvert.filters.markdown import markdown2html

    return markdown2html(text) if text else ""


def png_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _page(page: TitlePage, sections: list[RenderedSection], state: dict) -> str:
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in page.facts.items())
    toc = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>'
        + ("<ol>" + "".join(f'<li><a href="#{i}">{html.escape(t)}</a></li>' for _, i, t in s.headings) + "</ol>"
           if s.headings else "")
        + "</li>"
        for s in sections
    )
    figure = f"<figure>{png_tag(page.figure_png, 'perplexity curves of every run')}" \
             "<figcaption>Train (dashed) and validation (solid) perplexity of every run, per epoch and " \
             "against wall-clock time; ★ marks each run's best epoch.</figcaption></figure>" if page.figure_png else ""
    body = "".join(
        f'<section class="nb-section" id="{s.anchor}">{s.body}</section>' for s in sections
    )
    widgets = ""
    if state:
        blob = {"version_major": 2, "version_minor": 0, "state": state}
        import json

        widgets = (f'<script type="{WIDGET_STATE}">{_script_safe(json.dumps(blob))}</script>\n'
                   f'<script src="{WIDGET_RENDERER}"></script>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page.title)}</title>
<style>{CSS}</style>
</head>
<body>
<button id="toggle-code" type="button" onclick="document.body.classList.toggle('show-code');
this.textContent = document.body.classList.contains('show-code') ? 'Hide code' : 'Show code';">Show code</button>
<main>
<header class="title-page" id="top">
<h1>{html.escape(page.title)}</h1>
<table class="facts">{facts}</table>
<div class="headline">{markdown(page.headline)}</div>
<div class="headline-table">{page.table_html}</div>
{figure}
<nav class="toc"><h2>Contents</h2><ol><li><a href="#analysis">Summary of the analysis</a></li>{toc}</ol></nav>
<div class="analysis" id="analysis"><h2>Summary of the analysis</h2>{markdown(page.analysis_md)}</div>
<div class="notes">{markdown(page.notes_md)}</div>
</header>
{body}
</main>
{widgets}
</body>
</html>
"""


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip().rstrip("¶").strip()


def _script_safe(text: str) -> str:
    # JSON inside <script>: a literal "</" would end the element early.
    return text.replace("</", "<\\/")


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0550ae; --code: #f6f8fa; }
body { margin: 0; color: var(--fg); font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.9rem; border-bottom: 2px solid var(--line); padding-bottom: .3rem; margin-top: 2.5rem; }
h2 { font-size: 1.35rem; margin-top: 2rem; } h3 { font-size: 1.1rem; }
a { color: var(--accent); } a.anchor-link { display: none; }
#toggle-code { position: fixed; top: .8rem; right: .8rem; z-index: 10; padding: .35rem .8rem;
  border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; font: inherit; }
.title-page h1 { margin-top: .5rem; font-size: 2.2rem; }
table.facts th { text-align: left; color: var(--muted); font-weight: normal; padding-right: 1rem; }
table.facts td, table.facts th { border: none; padding: .1rem .6rem .1rem 0; text-align: left; }
table.comparison td:first-child, table.comparison th { text-align: left; }
.headline { font-size: 1.1rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { color: var(--muted); font-size: .9rem; }
nav.toc { background: var(--code); border: 1px solid var(--line); border-radius: 8px; padding: .5rem 1.5rem 1rem; margin-top: 2rem; }
nav.toc ol ol { font-size: .92rem; }
section.nb-section { border-top: 3px solid var(--line); margin-top: 3rem; }
table { border-collapse: collapse; font-size: .88rem; margin: .6rem 0; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: right; }
thead th { background: var(--code); }
tbody th { text-align: left; }
img { max-width: 100%; }
pre { white-space: pre-wrap; margin: 0; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.jp-Cell { margin: .4rem 0; }
.jp-InputPrompt, .jp-OutputPrompt, .jp-Collapser { display: none; }
.jp-InputArea-editor { background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem; overflow-x: auto; }
.jp-RenderedText pre { background: #fbfbfb; border-left: 3px solid var(--line); padding: .4rem .7rem; }
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] pre { color: var(--muted); font-size: 12px; }
body:not(.show-code) .jp-CodeCell .jp-Cell-inputWrapper { display: none; }
body:not(.show-code) .jp-CodeCell.jp-mod-noOutputs { display: none; }
.jupyter-widgets { margin: .3rem 0; }
.highlight .c, .highlight .c1, .highlight .cm { color: #6e7781; font-style: italic; }
.highlight .k, .highlight .kn, .highlight .kc, .highlight .ow { color: #cf222e; }
.highlight .s, .highlight .s1, .highlight .s2, .highlight .sd { color: #0a3069; }
.highlight .mi, .highlight .mf { color: #0550ae; } .highlight .nf, .highlight .nc { color: #8250df; }
@media print { #toggle-code { display: none; } }
"""


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def check_in_browser(report: str | Path, screenshot: str | Path | None = None,
                     chromium: str = "/usr/bin/chromium", width: int = 1200, height: int = 1500) -> dict:
    """Open the report in headless Chromium with the network cut off; count what rendered.

    Returns {"widgets": rendered widget views, "images": loaded images, "tables": tables,
    "remote_requests": URLs the page tried to fetch off this machine, "errors": page errors}.
    """
    from playwright.sync_api import sync_playwright

    remote, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS[1:], headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})

        def route(r):
            if r.request.url.startswith(("file:", "data:")):
                return r.continue_()
            remote.append(r.request.url)
            return r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(report).resolve().as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.widget-subarea').length >= "
                               "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length",
                               timeout=20_000)
        page.wait_for_timeout(500)
        counts = page.evaluate("""() => ({
            widgets: document.querySelectorAll('.widget-subarea > *').length,
            images: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
            tables: document.querySelectorAll('table').length})""")
        if screenshot:
            page.screenshot(path=str(screenshot), type="png")
        browser.close()
    return {**counts, "remote_requests": remote, "errors": errors}
