"""Shared fixtures: tiny synthetic corpora written to tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP barrier
# overhead (7x faster here when another process is busy). Set before torch is imported;
# subprocesses started by tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

# Fixtures shared across files live in their own modules: the generation ones (a tiny trained run,
# live servers, the browser) and the installed wheel with the smoke report it builds.
pytest_plugins = ["lm_fixtures", "wheel_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_PTB = ROOT.parent / "shared" / "bench" / "ptb"


def write_hpd(root: Path, books: dict[int, dict[int, str]]) -> Path:
    """Write a fake HPD folder: {book number: {chapter number: text}}."""
    for book, chapters in books.items():
        folder = root / f"book_{book}"
        folder.mkdir(parents=True)
        for chapter, text in chapters.items():
            (folder / f"chapter_{chapter}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tiny_hpd(tmp_path) -> Path:
    books = {
        1: {1: "“Harry,” said Ron.", 2: "Two.", 10: "Ten!", 9: "Nine?"},
        2: {1: "Book two — begins.", 3: "Three"},
    }
    root = write_hpd(tmp_path / "hpd", books)
    (root / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "book_1" / ".DS_Store").write_bytes(b"\x00\x01junk")
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A smoke-preset run trained once per test session (a few seconds on CPU)."""
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    train(get_preset("smoke"), run_dir, progress=False)
    return run_dir
