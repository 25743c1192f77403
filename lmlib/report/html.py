"""One HTML report from executed notebooks: title page, table of contents, one section each.

    reports/<profile>/
      report.html      title page (headline table + figure + analysis), contents, sections
      assets/          the vendored widget renderer (lmlib/report/assets), loaded by relative URL
      notebooks/       the executed notebooks the sections were rendered from

Code is hidden by default (a button shows it), figures are embedded as PNG data URIs, and
widgets (progress bars, the generation panel) are drawn from the state saved at execution
by the vendored @jupyter-widgets/html-manager: the page needs no network at all.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from markupsafe import Markup

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATES = Path(__file__).resolve().parent / "templates"
FIGURE_CAPTION = (
    "Train (dashed) and validation (solid: the mean over seeds; band: min–max over seeds) perplexity of "
    "every arm, per epoch and against wall-clock time; ★ marks each arm's best mean."
)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
RESULTS_MIME = "application/vnd.lmlib.results+json"  # what lmlib.report.notebook.record stores: not shown
WIDGET_RENDERER = "assets/embed.js"
# The "Show code" button's handler: the page's one inline script, allowed by its hash.
TOGGLE_SCRIPT = (
    "document.getElementById('toggle-code').addEventListener('click', function () {"
    " var shown = document.body.classList.toggle('show-code');"
    " this.textContent = shown ? 'Hide code' : 'Show code'; });"
)


def content_security_policy(inline_scripts=(TOGGLE_SCRIPT,)) -> str:
    """The report's Content-Security-Policy (a <meta> tag: the file is opened from disk, no server sends headers).

    Like the web app's (lmlib.apps.web.app.CSP), nothing may load from elsewhere, and no script
    that text from a corpus could smuggle into the page runs: scripts come from the report's
    own folder (assets/embed.js) or are the page's own inline ones, named by their sha256.
    Two allowances, each because the vendored widget renderer needs it: 'unsafe-eval' (it
    compiles the widget-state JSON schema with `new Function`, ajv) and inline styles (it
    inserts <style> elements, and notebook outputs carry style attributes). Neither lets an
    injected tag run code: inline scripts and event handlers stay refused.
    """
    digests = (base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() for script in inline_scripts)
    hashes = " ".join(f"'sha256-{digest}'" for digest in digests)
    return (
        f"default-src 'none'; script-src 'self' 'unsafe-eval' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'"
    )


@dataclass(frozen=True)
class Section:
    """One executed notebook and the title it gets in the report (None: its own H1)."""

    notebook: Path
    title: str | None = None
    group: str | None = None  # consecutive sections of one group fold under one heading (the training runs)


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
    group: str | None = None


@dataclass(frozen=True)
class Part:
    """What the page lists: one section, or a group of sections folded under one heading."""

    anchor: str
    title: str
    sections: list[RenderedSection]
    folded: bool  # a group: each section inside a <details>, closed


def parts(sections: list[RenderedSection]) -> list[Part]:
    """Consecutive sections of the same group become one folded part; the others stand alone."""
    found: list[Part] = []
    for section in sections:
        if section.group and found and found[-1].folded and found[-1].title == section.group:
            found[-1].sections.append(section)
        elif section.group:
            found.append(Part(f"{section.anchor}-group", section.group, [section], True))
        else:
            found.append(Part(section.anchor, section.title, [section], False))
    return found


def render_section(
    notebook: nbformat.NotebookNode, anchor: str, title: str | None = None, group: str | None = None
) -> RenderedSection:
    """HTML of one notebook's cells, its heading ids prefixed with `anchor` so sections never clash."""
    from jinja2 import FileSystemLoader
    from nbconvert import HTMLExporter

    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    notebook = drop_closed_widgets(notebook, state)
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[FileSystemLoader(TEMPLATES)],
        template_file="section.html.j2",
    )
    body, _ = exporter.from_notebook_node(notebook)
    body = re.sub(r'(<h[1-6] id=")([^"]+)"', lambda m: f'{m.group(1)}{anchor}-{m.group(2)}"', body)
    body = re.sub(r'(<a class="anchor-link" href="#)([^"]+)"', lambda m: f'{m.group(1)}{anchor}-{m.group(2)}"', body)
    h1 = re.search(r'<h1 id="[^"]*">(.*?)(<a class="anchor-link".*?</a>)?</h1>', body, re.S)
    own_title = _text(h1.group(1)) if h1 else anchor
    if h1 and title:
        body = body[: h1.start(1)] + html.escape(title) + body[h1.end(1) :]
    headings = [(2, m.group(1), _text(m.group(2))) for m in re.finditer(r'<h2 id="([^"]+)">(.*?)</h2>', body, re.S)]
    return RenderedSection(anchor, title or own_title, body, headings, dict(state), group)


def drop_closed_widgets(notebook: nbformat.NotebookNode, state: dict) -> nbformat.NotebookNode:
    """Remove outputs showing widgets that were closed before the notebook ended, and results records.

    A closed widget (e.g. a progress bar with leave=False) has no saved state, so it would
    render as an empty gap; its text fallback is the bar's first frame, which misleads.
    """
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if _shown(o, state)]
    return notebook


def _shown(output, state: dict) -> bool:
    """Whether an output belongs on the page: not a closed widget, not a results record (data for the tests)."""
    return not _closed_widget(output, state) and RESULTS_MIME not in output.get("data", {})


def _closed_widget(output, state: dict) -> bool:
    view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
    return view is not None and view.get("model_id") not in state


def build_report(out_dir: str | Path, page: TitlePage, sections: list[Section]) -> Path:
    """Write out_dir/report.html (and out_dir/assets/); return the report's path."""
    out_dir = Path(out_dir)
    rendered = [
        render_section(nbformat.read(s.notebook, as_version=4), f"s{i}", s.title, s.group)
        for i, s in enumerate(sections, 1)
    ]
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


# What Markdown (and nbconvert's math extension) would read as markup: each is backslash-escaped.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~$])")


def escape_markdown(text: str) -> str:
    """`text` shown as it is inside Markdown: no HTML (a file named `<b onmouseover=...>` stays text), no markup.

    Corpus file names (book titles) and run names reach the report's Markdown, which passes
    raw HTML through; `&`, `<`, `>` become entities and Markdown's punctuation is escaped.
    """
    return markdown_punctuation(html.escape(str(text), quote=False))


def markdown_punctuation(text: str) -> str:
    """`text` with Markdown's punctuation escaped (no HTML escaping: templates autoescape it)."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(text))


def markdown(text: str) -> str:
    """Markdown to HTML with the renderer nbconvert itself uses."""
    from nbconvert.filters.markdown import markdown2html

    return markdown2html(text) if text else ""


@dataclass(frozen=True)
class Figure:
    """A PNG on the title page, with its caption."""

    png: bytes
    alt: str
    caption: str

    @property
    def png_base64(self) -> str:
        return base64.b64encode(self.png).decode()


def _page(page: TitlePage, sections: list[RenderedSection], state: dict) -> str:
    """The report page from templates/report.html.j2 (Jinja, autoescaped) and report.css."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]))
    env.filters["markdown"] = lambda text: Markup(markdown(text))
    figures = [Figure(page.figure_png, "perplexity curves of every run", FIGURE_CAPTION)] if page.figure_png else []
    blob = json.dumps({"version_major": 2, "version_minor": 0, "state": state}) if state else ""
    return env.get_template("report.html.j2").render(
        page=page,
        parts=parts(sections),
        figures=figures,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        widget_state=_script_safe(blob),
        widget_renderer=WIDGET_RENDERER,
        toggle_script=TOGGLE_SCRIPT,
        csp=content_security_policy(),
    )


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip().rstrip("¶").strip()


def _script_safe(text: str) -> str:
    # JSON inside <script>: a literal "</" would end the element early.
    return text.replace("</", "<\\/")
