"""Corpora, each loaded by name or path with one call: `load_corpus("austen")`.

Four kinds:
  * `austen` — the embedded default: Jane Austen's six novels (data/austen/, public domain);
  * `hpd`    — the Harry Potter books (HPD dataset), which the user supplies (data/hpd/);
  * a pre-split benchmark folder holding train.txt / valid.txt / test.txt (PTB, WikiText),
    already tokenized: split on whitespace, `<eos>` at each line end;
  * any `.txt` file or folder of `.txt` files.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from lmlib import paths
from lmlib.errors import LMError

SPLIT_NAMES = ("train", "valid", "test")
# The most a corpus file may hold, and a .gz one decompress to: 2 GiB is far above any corpus
# here (HPD: 6 MB, WikiText-103: 540 MB) and stops a "gzip bomb", or a device such as /dev/zero
# named as a corpus, before it fills the memory.
MAX_GUNZIP_BYTES = 2 * 2**30
NAMED_CORPORA = ("austen", "hpd")
# WikiText ships wiki.train.tokens, PTB ships ptb.train.txt: accept these spellings.
_SPLIT_FILE_PATTERNS = ("{split}.txt", "ptb.{split}.txt", "wiki.{split}.tokens", "{split}.tokens")

HPD_HELP = (
    "Expected layout: {root}/book_1/chapter_1.txt ... {root}/book_7/chapter_N.txt "
    "(UTF-8 text, one file per chapter). The books come with the Harry Potter Dialogue "
    "dataset (HPD, Chen et al. 2023): see the download section of "
    "https://github.com/nuochenpku/Harry-Potter-Dialogue-Dataset. The books are copyrighted, "
    "so their text is never shipped with this project: put your own copy there, or pass "
    "--corpus /path/to/hpd."
)


@dataclass(frozen=True)
class Document:
    """One book (or one file) of raw text, in reading order."""

    title: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Raw documents in order, or (pre-split corpora) the text of train/valid/test."""

    name: str  # how text names it: "austen", "hpd", or the folder's or file's name
    source: str
    documents: tuple[Document, ...]
    presplit: bool = False  # documents are exactly (train, valid, test), already tokenized
    reference: str = ""  # what load_corpus takes to load it again (corpus_reference); "" means `name`


def corpus_reference(name_or_path: str | os.PathLike) -> str:
    """What a run records as its corpus so that it loads the same text again: a name as it is, a path made absolute.

    A path as the user typed it (`mine.txt`) names another file, or none, from another folder,
    and its base name alone (`mine`) names no corpus at all; the absolute path reloads it from
    anywhere on this machine (`evaluate`, notebook 03, a report rebuild that reuses the run).
    """
    key = str(name_or_path)
    path = os.path.expanduser(key)
    if key in NAMED_CORPORA or (_bare_name(key) and not os.path.exists(path)):
        return key  # a name, or one that names nothing (load_corpus says so)
    return os.path.abspath(path)


def _bare_name(key: str) -> bool:
    return os.sep not in key and "." not in key


def corpus_label(reference: str) -> str:
    """How a figure or table names a corpus: its name, or the base name of its path."""
    return reference if reference in NAMED_CORPORA else (Path(reference).name or reference)


def legacy_corpus_name(reference: str) -> str:
    """The name lmlib 0.2.0 recorded for a corpus given by path (an HPD folder: "hpd"; a file: its stem)."""
    path = Path(reference)
    if reference in NAMED_CORPORA or not path.exists():
        return reference
    if path.is_dir():
        return "hpd" if _looks_like_hpd(path) else path.name
    return path.stem


def load_corpus(name_or_path: str | os.PathLike) -> Corpus:
    """Load a corpus by name (`austen`, `hpd`) or by path (pre-split folder, .txt file or folder)."""
    key = str(name_or_path)
    if key == "austen":
        return load_austen()
    if key == "hpd":
        return replace(load_hpd(paths.hpd_dir()), reference="hpd")
    return replace(_load_path(key), reference=corpus_reference(key))


def _load_path(key: str) -> Corpus:
    path = Path(key).expanduser()
    if not path.exists():
        if _bare_name(key):
            raise LMError(
                f"unknown corpus name {key!r}: use 'austen' (embedded), 'hpd' (your Harry "
                "Potter books in data/hpd/), or a path to a .txt file or folder"
            )
        raise LMError(f"corpus path {path} does not exist: check the path")
    if path.is_dir():
        if _looks_like_hpd(path):
            return load_hpd(path)
        if _split_files(path):
            return load_presplit(path)
        return load_text_folder(path)
    return load_text_file(path)


def is_presplit(name_or_path: str | os.PathLike) -> bool:
    """Whether the corpus is a pre-split folder (train/valid/test files), found without reading it."""
    key = str(name_or_path)
    if key in ("austen", "hpd"):
        return False
    path = Path(key).expanduser()
    return path.is_dir() and not _looks_like_hpd(path) and bool(_split_files(path))


def read_text(path: Path) -> str:
    """Read a UTF-8 (optionally gzipped) regular file of at most MAX_GUNZIP_BYTES; bad bytes give the file name
    and byte offset."""
    try:
        _check_regular(path)
        data = _gunzip(path) if path.suffix == ".gz" else _read_bounded(path)
    except OSError as err:
        raise LMError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LMError(
            f"{path} is not valid UTF-8: byte 0x{data[err.start]:02x} at offset {err.start} "
            "cannot be decoded; re-save the file as UTF-8"
        ) from None


def _check_regular(path: Path) -> None:
    """A corpus is a regular file: a device (/dev/zero, /dev/stdin), FIFO or socket never ends, or blocks."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"
        raise LMError(f"{path} is {kind}, not a regular file: pass a UTF-8 .txt file or a folder of them")


def _too_large(path: Path, what: str) -> LMError:
    return LMError(
        f"{path} {what} more than {MAX_GUNZIP_BYTES / 2**30:g} GiB: that is no corpus this project can "
        "train on; check the file"
    )


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, refused past MAX_GUNZIP_BYTES (read one byte beyond: a file may grow while read)."""
    if path.stat().st_size > MAX_GUNZIP_BYTES:
        raise _too_large(path, "holds")
    with open(path, "rb") as handle:
        data = handle.read(MAX_GUNZIP_BYTES + 1)
    if len(data) > MAX_GUNZIP_BYTES:
        raise _too_large(path, "holds")
    return data


def _gunzip(path: Path) -> bytearray:
    """A gzipped file's content, refused past MAX_GUNZIP_BYTES (a small file can expand without bound)."""
    data = bytearray()
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                data += chunk
                if len(data) > MAX_GUNZIP_BYTES:
                    raise _too_large(path, "decompresses to")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise LMError(f"{path} is not a valid gzip file ({err}): recompress it, or pass the plain .txt") from None
    return data


def load_austen() -> Corpus:
    """The embedded default: the six novels, one document each, in publication order."""
    folder = paths.austen_dir()
    files = sorted(folder.glob("*.txt.gz"), key=lambda p: _leading_number(p.name))
    if len(files) != 6:
        raise LMError(f"the embedded corpus in {folder} is incomplete: reinstall the project")
    documents = tuple(Document(_title_from_stem(f.name), read_text(f)) for f in files)
    return Corpus("austen", str(folder), documents)


def load_hpd(root: str | os.PathLike) -> Corpus:
    """The Harry Potter books, read exactly as the original study did.

    Books book_1..book_7 in order; chapters sorted *numerically* (chapter_10 after
    chapter_9); one space appended after each chapter's text. Concatenating the
    documents gives the original's single string, which it tokenized once.
    """
    root = Path(root)
    help_text = HPD_HELP.format(root=root)
    if not root.is_dir():
        raise LMError(f"Harry Potter books not found: {root} does not exist. {help_text}")
    books = _numbered(root, "book_", want_dir=True)
    if not books:
        raise LMError(f"{root} holds no book_N folders. {help_text}")
    if [n for n, _ in books] != list(range(1, len(books) + 1)):
        raise LMError(f"{root} has book folders {[n for n, _ in books]}, not 1..N. {help_text}")
    documents = []
    for number, book_dir in books:
        chapters = _numbered(book_dir, "chapter_", want_dir=False, suffix=".txt")
        if not chapters:
            raise LMError(f"{book_dir} holds no chapter_N.txt files. {help_text}")
        text = "".join(read_text(path) + " " for _, path in chapters)
        documents.append(Document(f"Book {number}", text))
    if not any(d.text.strip() for d in documents):
        raise LMError(f"the chapter files under {root} are all empty. {help_text}")
    return Corpus("hpd", str(root), tuple(documents))


def load_presplit(root: str | os.PathLike) -> Corpus:
    """A benchmark folder with train/valid/test files (Penn Treebank, WikiText layout)."""
    root = Path(root)
    files = _split_files(root)
    missing = [s for s in SPLIT_NAMES if s not in files]
    if missing:
        raise LMError(f"{root} lacks the {', '.join(missing)} split file(s): expected train.txt, valid.txt, test.txt")
    documents = tuple(Document(split, read_text(files[split])) for split in SPLIT_NAMES)
    if not documents[0].text.strip():
        raise LMError(f"{files['train']} is empty: a pre-split corpus needs training text")
    return Corpus(root.name, str(root), documents, presplit=True)


def load_text_folder(root: str | os.PathLike) -> Corpus:
    """Every .txt file below `root`, in natural order (file_2 before file_10)."""
    root = Path(root)
    files = sorted((p for p in root.rglob("*.txt") if p.is_file()), key=_natural_key)
    if not files:
        raise LMError(f"{root} holds no .txt files: point --corpus at a .txt file or a folder of them")
    documents = tuple(Document(str(p.relative_to(root)), read_text(p)) for p in files)
    return _non_empty(Corpus(root.name, str(root), documents))


def load_text_file(path: str | os.PathLike) -> Corpus:
    """One plain-text file as a one-document corpus."""
    path = Path(path)
    if path.suffix not in (".txt", ".gz", ".tokens", ""):
        raise LMError(f"{path} is not a .txt file: pass a UTF-8 .txt file or a folder of them")
    return _non_empty(Corpus(path.stem, str(path), (Document(path.stem, read_text(path)),)))


def _non_empty(corpus: Corpus) -> Corpus:
    if not any(d.text.strip() for d in corpus.documents):
        raise LMError(f"{corpus.source} contains no text: the corpus is empty")
    return corpus


def _numbered(folder: Path, prefix: str, want_dir: bool, suffix: str = "") -> list[tuple[int, Path]]:
    """Entries named `{prefix}{N}{suffix}`, sorted by N; anything else (.DS_Store) is ignored."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+){re.escape(suffix)}$")
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() == want_dir:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _looks_like_hpd(path: Path) -> bool:
    return any(p.is_dir() and re.match(r"^book_\d+$", p.name) for p in path.iterdir())


def _split_files(root: Path) -> dict[str, Path]:
    files = {}
    for split in SPLIT_NAMES:
        for pattern in _SPLIT_FILE_PATTERNS:
            candidate = root / pattern.format(split=split)
            if candidate.is_file():
                files[split] = candidate
                break
    return files


def _leading_number(name: str) -> int:
    match = re.match(r"(\d+)", name)
    return int(match.group(1)) if match else 0


def _title_from_stem(name: str) -> str:
    stem = name.split(".")[0]
    return " ".join(w.capitalize() if w not in ("and",) else w for w in stem.split("_")[1:])


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]
