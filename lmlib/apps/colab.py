"""Colab: what the notebooks' first cell sets up once lmlib is installed, and only on Colab.

    on_colab = colab_setup(keep_runs_on_drive=True)   # the first cell's last line; elsewhere None, nothing done

The first cell itself (the same in every notebook, folded as Colab's form "Set-up") only makes
lmlib importable: from a clone's notebooks/ it puts that clone first on sys.path; where lmlib is
missing (Colab) it pip-installs `lmlib[notebooks,sweep] @ git+REPOSITORY` with every package
already installed as a constraint, so Colab's torch and ipywidgets 7.7.1 are never replaced.

On a Colab runtime (`google.colab` importable) it
  * keeps runs/ in Google Drive when asked (mounts Drive, links ./runs to MyDrive/lmlib/runs):
    a runtime that disconnects loses its disk, but training resumes from the run's
    last.safetensors, so the next runtime continues the run instead of starting over;
  * says which device the runtime got: the GPU's name and memory, and the precision `auto`
    trains in there (fp16 with a gradient scaler on a T4, bf16 on Ampere and later);
  * says how to bring the Harry Potter books when data/hpd is missing (`unpack_hpd` puts an
    uploaded zip in the layout the loader expects, or point `corpus` at a Drive folder).
Nothing here runs outside Colab except `unpack_hpd`, which is plain file handling.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import zipfile
from pathlib import Path

from lmlib import paths
from lmlib.errors import LMError

# The project's address, the one place it is written in the package. A placeholder: the project has no
# public address yet. Every notebook's first cell (LMLIB_REPO, which runs before lmlib is installed)
# and README's Colab badges repeat it; tests/e2e/test_notebooks.py checks that they agree with this.
REPOSITORY = "https://github.com/OWNER/lmlib"
DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
DRIVE_FOLDER = "MyDrive/lmlib"  # lmlib's folder inside the user's Drive
_CHAPTER = re.compile(r"^(?P<prefix>(?:.*/)?)book_(?P<book>\d+)/chapter_(?P<chapter>\d+)\.txt$")

HPD_ON_COLAB = """\
Harry Potter books (corpus "hpd"): they are copyrighted, so you bring your own copy, one file per chapter:
  data/hpd/book_1/chapter_1.txt ... data/hpd/book_7/chapter_N.txt
On Colab, either
  * upload a zip of the book_N folders in the Files panel (it lands in /content), then run
      from lmlib.apps.colab import unpack_hpd; unpack_hpd("/content/hpd.zip")
    and use corpus = "hpd"; or
  * keep the book_N folders in Google Drive, mount it (KEEP_RUNS_ON_DRIVE = True does, or
      from google.colab import drive; drive.mount("/content/drive"))
    and use corpus = "/content/drive/MyDrive/hpd" (the folder that holds book_1 ... book_7)."""


def in_colab() -> bool:
    """Whether this is a Colab runtime: `google.colab` can be imported (the one guard for everything here)."""
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # no `google` package at all, or a broken one
        return False


def colab_setup(keep_runs_on_drive: bool = False, *, runs: str | os.PathLike = "runs", log=print) -> dict | None:
    """On Colab: Drive for runs/ when asked, the device report, the Harry Potter hint. Elsewhere: None, nothing done."""
    if not in_colab():
        return None
    from lmlib.report.notebook import device_report  # torch and the GPU probe only on Colab

    done = {"device": device_report("auto"), "runs": None}
    if keep_runs_on_drive:
        done["runs"] = str(keep_on_drive(runs))
        log(f"runs/ is kept in Google Drive ({done['runs']}): run a notebook again after a disconnect to resume")
    log(f"device: {done['device']}")
    if not paths.hpd_dir().is_dir():
        log(HPD_ON_COLAB)
    return done


def mount_drive(drive: Path | None = None) -> Path:
    """Mount Google Drive at `drive` (Colab asks the user for permission) unless it is mounted; return MyDrive."""
    drive = Path(drive or DRIVE)
    if not (drive / "MyDrive").is_dir():
        from google.colab import drive as colab_drive

        colab_drive.mount(str(drive))
    return drive / "MyDrive"


def keep_on_drive(local: str | os.PathLike = "runs", drive: Path | None = None, folder: str = DRIVE_FOLDER) -> Path:
    """Make `local` a link to a folder of the same name in Google Drive; runs already in `local` move there."""
    my_drive = mount_drive(drive)
    local = Path(local)
    target = my_drive.parent / folder / local.name
    target.mkdir(parents=True, exist_ok=True)
    if local.is_symlink():
        if local.resolve() == target.resolve():
            return target
        local.unlink()  # a link to somewhere else: replaced, nothing behind it is touched
    elif local.is_dir():
        for entry in sorted(local.iterdir()):
            if (target / entry.name).exists():
                raise LMError(
                    f"{entry} exists both here and in Google Drive ({target / entry.name}): "
                    "move or delete one of them, then run this cell again"
                )
        for entry in sorted(local.iterdir()):
            shutil.move(str(entry), str(target / entry.name))
        local.rmdir()
    elif local.exists():
        raise LMError(f"{local} is a file, not a folder of runs: move it away to keep runs in Google Drive")
    local.symlink_to(target, target_is_directory=True)
    return target


def unpack_hpd(archive: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """Extract the Harry Potter books from a zip into `dest` (data/hpd) as book_N/chapter_M.txt.

    The book_N folders may sit anywhere in the zip (at its top, or in one folder such as hpd/);
    other files (__MACOSX/, .DS_Store, notes) are skipped. Only names the loader expects are
    written, so a zip cannot place files outside `dest`.
    """
    from lmlib.data.corpus import HPD_HELP, load_hpd

    archive, dest = Path(archive), Path(dest) if dest is not None else paths.hpd_dir()
    if not zipfile.is_zipfile(archive):
        raise LMError(f"{archive} is not a zip file: zip the book_N folders and upload that")
    with zipfile.ZipFile(archive) as zipped:
        chapters = [(m, match) for m in zipped.infolist() if (match := _CHAPTER.match(m.filename))]
        prefixes = sorted({match["prefix"] for _, match in chapters if "__MACOSX" not in match["prefix"]})
        if len(prefixes) != 1:
            found = (
                f"book folders under {', '.join(p or '(top)' for p in prefixes)}" if prefixes else "no chapter files"
            )
            raise LMError(f"{archive} holds {found}. {HPD_HELP.format(root='the zip')}")
        for member, match in chapters:
            if match["prefix"] != prefixes[0]:
                continue
            out = dest / f"book_{int(match['book'])}" / f"chapter_{int(match['chapter'])}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zipped.read(member))
    corpus = load_hpd(dest)  # the loader's own checks: books 1..N, chapters, text
    print(f"{len(corpus.documents)} books written to {dest}: use corpus = 'hpd'")
    return dest
