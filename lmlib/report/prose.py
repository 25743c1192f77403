"""The report's written parts: Markdown templates (templates/*.md.j2) filled with typed records.

The sentences live in the templates, beside report.html.j2; the code computes the numbers
and the verdicts. Every value a template prints is HTML-escaped (autoescape), so a name that
came from a file (a book title, a run folder) reaches the page as text, never as markup, and
names pass the `name` filter, which escapes Markdown's punctuation too;
numbers go through lmlib.report.numbers (filters `ppl`, `signed`, `percent`, `count`, ...).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lmlib.report import numbers
from lmlib.report.html import markdown_punctuation

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(numbers.FILTERS)
    env.filters["name"] = markdown_punctuation  # a run, arm or book name: any text at all, shown as it is
    return env


def render(template: str, **context) -> str:
    """templates/<template> filled with `context`: Markdown text, blank runs of lines collapsed."""
    text = _environment().get_template(template).render(**context)
    lines, blank = [], False
    for line in text.splitlines():
        if not line.strip():
            if not blank and lines:
                lines.append("")
            blank = True
            continue
        lines.append(line.rstrip())
        blank = False
    return "\n".join(lines).strip()
