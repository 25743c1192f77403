"""README.md and docs/: a front door of at most 12 KB, numbers only where they are generated, links that resolve.

Every measured number in the README and docs sits in a `<!-- numbers: NAME -->` block written
by scripts/docs_numbers.py from a committed file (a report's summary.json, a benchmark's JSON,
the shipped model's folder); these tests fail when a block no longer equals what its source
gives, when prose quotes a perplexity or a timing of its own, or when a relative link points
at nothing. Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 12_288  # bytes: a front door, not a handbook (nanoGPT's README is about 14 KB)


def _docs_numbers():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "scripts" / "docs_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


docs_numbers = _docs_numbers()
DOCUMENTS = docs_numbers.documents()

# A perplexity or a timing: "120.5 ppl", "0.25 s", "3.5x", "12.9 MB", "27.4%", "77 ms",
# "20 minutes", "test 120.5", "perplexity of 97.2". Budgets and settings are written so that
# they do not read as measurements: "a 10-minute budget", `max_minutes`, `--max-minutes 10`.
MEASURED = re.compile(
    r"\b\d[\d,]*\.\d+\s*(?:ppl|perplexity|s|ms|sec|seconds|min|minutes|h|hours|MiB|MB|GiB|GB|tokens/s|x|×)(?![\w/])"
    r"|\b\d+\.\d+\s*%"
    r"|\b\d[\d,]*\s*(?:ms|minutes|hours)\b"
    r"|\b(?:test|valid|validation|perplexity|ppl)(?:\s+(?:ppl|perplexity|of|at|is|to|from|was))*\s+\d+\.\d\b",
    re.IGNORECASE,
)
# The original study's own facts, quoted as the study reported them.
ALLOWED = ("106.3", "48 minutes")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def outside_blocks(text: str) -> str:
    return docs_numbers.BLOCK.sub("", text)


def measured_numbers(text: str) -> list[str]:
    """Perplexity- or timing-like numbers in `text` outside generated blocks, less the allowed facts."""
    found = [m.group(0) for m in MEASURED.finditer(outside_blocks(text))]
    return [f for f in found if not any(allowed in f for allowed in ALLOWED)]


def test_the_readme_is_at_most_12_kb():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size:,} bytes (at most {README_LIMIT:,}): move a section into docs/"


def test_every_generated_block_equals_what_its_source_gives(capsys):
    status = docs_numbers.main(["--check"])
    assert status == 0, f"run python scripts/docs_numbers.py:\n{capsys.readouterr().out}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_no_measured_number_outside_a_generated_block(path):
    found = measured_numbers(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} quotes {found}: put them in a block of scripts/docs_numbers.py"


def test_the_scan_finds_measurements_and_leaves_blocks_settings_and_the_study_alone():
    for prose in (
        "test perplexity 120.5 after",
        "it took 20 minutes",
        "0.25 s to tokenize",
        "3.54x faster",
        "a 27.4% gain",
        "peaks at 725.1 MiB",
        "77 ms over HTTP",
        "valid 91.6, test 120.4",
    ):
        assert measured_numbers(prose), prose
    block = "<!-- numbers: x -->\ntest ppl 120.5, 20 minutes\n<!-- /numbers -->\n"
    for prose in (
        block,
        "a 10-minute budget",
        "`--max-minutes 10`",
        "test perplexity 106.3 after 48 minutes",
        "2 layers of 1024, dropout 0.65",
        "torch 2.13.0 CPU build",
        "lr 5e-3",
    ):
        assert not measured_numbers(prose), prose


def test_every_block_in_the_docs_names_a_known_source():
    for path in DOCUMENTS:
        for match in docs_numbers.BLOCK.finditer(path.read_text(encoding="utf-8")):
            assert match.group("name") in docs_numbers.BLOCKS, f"{path.name}: unknown block {match.group('name')}"


def anchors(path: Path) -> set[str]:
    """The heading anchors GitHub gives a Markdown page (fenced code skipped)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file_and_heading(path):
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} links to missing files or headings: {broken}"


def test_a_block_whose_source_is_missing_is_kept_and_named_with_what_writes_it():
    block = docs_numbers.Block(("no/such.json",), "python write_it.py", lambda: "never drawn")
    text = "<!-- numbers: x -->\nas it was\n<!-- /numbers -->\n"
    new, changed, missing = docs_numbers.rewrite(text, {"x": block})
    assert new == text and changed == []
    assert missing == ["x: no/such.json is missing; write it with `python write_it.py`"]
