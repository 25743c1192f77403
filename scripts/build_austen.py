"""Rebuild data/austen/ from Debian's r-cran-janeaustenr package (1.0.0-1).

    apt-get download r-cran-janeaustenr        # r-cran-janeaustenr_1.0.0-1_all.deb
    dpkg-deb -x r-cran-janeaustenr_1.0.0-1_all.deb /tmp/janeaustenr
    pip install rdata
    python scripts/build_austen.py /tmp/janeaustenr

The package stores each novel as an R character vector (one printed line per element)
in an R lazy-load database: `Rdata.rdx` (an RDS index of byte offsets) and `Rdata.rdb`
(per object: a 4-byte length, then a zlib stream of the serialized object).
See data/austen/README.md for what the cleaning removes.
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from pathlib import Path

RDATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
OUT_DIR = Path(__file__).resolve().parents[1] / "data" / "austen"

# Publication order (as janeaustenr's austen_books() lists them).
BOOKS = [
    ("sensesensibility", "1_sense_and_sensibility"),
    ("prideprejudice", "2_pride_and_prejudice"),
    ("mansfieldpark", "3_mansfield_park"),
    ("emma", "4_emma"),
    ("northangerabbey", "5_northanger_abbey"),
    ("persuasion", "6_persuasion"),
]

CHAPTER = re.compile(r"^(CHAPTER|Chapter)\s+([0-9]+|[IVXLC]+)\.?$")
VOLUME = re.compile(r"^VOLUME\s+[IVX]+\.?$")
END = re.compile(r"^(THE END|FINIS|Finis|A NOTE ON THE TEXT)$")
EDITORIAL = re.compile(r"\[(At this point|End volume)[^\]]*\]?")
ITALICS = re.compile(r"_([^_]+)_")
SCENE_BREAK = re.compile(r"^[* ]+$")  # "* * * * *" and "***"
FOOTNOTE = re.compile(r"^\*\S")  # "*Vide a letter from ..." (Northanger Abbey)


def read_books(root: Path) -> dict[str, list[str]]:
    """Return {variable name: list of printed lines} from the package's lazy-load database."""
    import rdata  # only this script needs it

    data = root / RDATA_DIR
    index = rdata.conversion.convert(rdata.parser.parse_file(data / "Rdata.rdx"))["variables"]
    blob = (data / "Rdata.rdb").read_bytes()
    books = {}
    for name, (offset, length) in index.items():
        raw = zlib.decompress(blob[offset + 4 : offset + length])
        books[str(name)] = [str(line) for line in rdata.conversion.convert(rdata.parser.parse_data(raw))]
    return books


def clean(lines: list[str]) -> list[str]:
    """Keep the prose: drop front matter, headings, end matter, editorial notes and `_italics_` marks."""
    start = next(i for i, line in enumerate(lines) if CHAPTER.match(line.strip()))
    paragraphs, current = [], []
    for line in lines[start:]:
        stripped = line.strip()
        if END.match(stripped):
            break
        if CHAPTER.match(stripped) or VOLUME.match(stripped) or not stripped:
            if current:
                paragraphs.append(" ".join(current))
            current = []
            continue
        current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    paragraphs = [ITALICS.sub(r"\1", EDITORIAL.sub("", p)).strip() for p in paragraphs]
    return [p for p in paragraphs if p and not SCENE_BREAK.match(p) and not FOOTNOTE.match(p)]


def main(root: str) -> None:
    books = read_books(Path(root))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for variable, stem in BOOKS:
        text = "\n".join(clean(books[variable])) + "\n"
        # mtime=0 keeps the .gz byte-identical across rebuilds
        with (
            open(OUT_DIR / f"{stem}.txt.gz", "wb") as raw,
            gzip.GzipFile(filename=f"{stem}.txt", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        ):
            gz.write(text.encode("utf-8"))
        print(f"{stem}: {len(text.split()):,} words")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/janeaustenr")
