"""The Colab set-up (lmlib.apps.colab), with google.colab and the GPU stubbed: nothing Colab-only runs elsewhere."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lmlib import paths
from lmlib.apps import colab
from lmlib.data.corpus import load_hpd
from lmlib.errors import LMError
from lmlib.training import device as device_module

T4 = SimpleNamespace(name="Tesla T4", total_memory=15_828_320_256)  # what torch reports on Colab's T4
A100 = SimpleNamespace(name="NVIDIA A100-SXM4-40GB", total_memory=42_505_273_344)


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """An importable `google.colab` whose drive.mount makes the folder (as Colab's does, after asking)."""
    package = tmp_path / "fake" / "google" / "colab"  # `google` a namespace package, as on Colab
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "drive.py").write_text(
        "import os\nMOUNTS = []\n"
        "def mount(path):\n    MOUNTS.append(path)\n    os.makedirs(os.path.join(path, 'MyDrive'), exist_ok=True)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.setattr(colab, "DRIVE", tmp_path / "content" / "drive")
    monkeypatch.setattr(paths, "hpd_dir", lambda: tmp_path / "data" / "hpd")
    monkeypatch.chdir(tmp_path)
    assert colab.in_colab()
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("google.colab")]:
        sys.modules.pop(name)


def stub_gpu(monkeypatch, props: SimpleNamespace, native_bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16)
    monkeypatch.setattr(device_module, "lstm_supports", lambda dtype, device: True)


def test_outside_colab_nothing_happens(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert not colab.in_colab()
    assert colab.colab_setup(True) is None
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize("props, native_bf16, expected", [(T4, False, "fp16"), (A100, True, "bf16")])
def test_colab_reports_the_gpu_it_got(fake_colab, monkeypatch, props, native_bf16, expected):
    stub_gpu(monkeypatch, props, native_bf16)
    said = []
    done = colab.colab_setup(log=said.append)
    gib = f"{props.total_memory / 2**30:.1f} GiB"
    assert done["device"].startswith(f"cuda: {props.name}, {gib}, precision auto = {expected}")
    assert said[0] == f"device: {done['device']}" and done["runs"] is None
    assert not (fake_colab / "runs").exists()  # Drive only when asked


def test_a_cpu_runtime_is_told_how_to_get_a_gpu(fake_colab, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    said = []
    colab.colab_setup(log=said.append)
    assert "no GPU found" in said[0] and "Runtime → Change runtime type → T4 GPU" in said[0]


def test_the_harry_potter_hint_only_while_the_books_are_missing(fake_colab):
    said = []
    colab.colab_setup(log=said.append)
    assert any("data/hpd/book_1/chapter_1.txt" in line and "unpack_hpd" in line for line in said)
    (fake_colab / "data" / "hpd" / "book_1").mkdir(parents=True)
    said.clear()
    colab.colab_setup(log=said.append)
    assert not any("unpack_hpd" in line for line in said)


def test_runs_are_kept_on_drive_and_earlier_runs_move_there(fake_colab):
    from google.colab import drive

    (fake_colab / "runs" / "cpu").mkdir(parents=True)
    (fake_colab / "runs" / "cpu" / "last.safetensors").write_bytes(b"checkpoint")
    said = []
    done = colab.colab_setup(keep_runs_on_drive=True, log=said.append)
    target = fake_colab / "content" / "drive" / "MyDrive" / "lmlib" / "runs"
    assert done["runs"] == str(target) and drive.MOUNTS == [str(fake_colab / "content" / "drive")]
    assert (fake_colab / "runs").is_symlink() and (fake_colab / "runs").resolve() == target.resolve()
    assert (target / "cpu" / "last.safetensors").read_bytes() == b"checkpoint"  # a new runtime resumes from it
    assert "Google Drive" in said[0]
    # a new runtime (or the next notebook): Drive is mounted already, the link is kept as it is
    colab.colab_setup(keep_runs_on_drive=True, log=said.append)
    assert drive.MOUNTS == [str(fake_colab / "content" / "drive")] and (fake_colab / "runs").is_symlink()


def test_a_run_in_both_places_is_never_overwritten(fake_colab):
    target = colab.mount_drive() / "lmlib" / "runs" / "cpu"
    target.mkdir(parents=True)
    (fake_colab / "runs" / "cpu").mkdir(parents=True)
    with pytest.raises(LMError, match="exists both here and in Google Drive"):
        colab.keep_on_drive("runs")
    assert (fake_colab / "runs" / "cpu").is_dir() and not (fake_colab / "runs").is_symlink()
    (fake_colab / "runs" / "cpu").rmdir()
    (fake_colab / "runs").rmdir()
    (fake_colab / "runs").write_text("not a folder")
    with pytest.raises(LMError, match="is a file"):
        colab.keep_on_drive("runs")


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, text in members.items():
            zipped.writestr(name, text)
    return path


def test_unpack_hpd_puts_an_uploaded_zip_in_the_loaders_layout(tmp_path):
    archive = write_zip(tmp_path / "hpd.zip", {
        "hpd/book_1/chapter_1.txt": "Mr and Mrs Dursley.",
        "hpd/book_1/chapter_10.txt": "Ten.",
        "hpd/book_2/chapter_1.txt": "Dobby.",
        "hpd/.DS_Store": "junk",
        "__MACOSX/hpd/book_1/._chapter_1.txt": "junk",
        "hpd/notes.txt": "not a chapter",
    })  # fmt: skip
    dest = colab.unpack_hpd(archive, tmp_path / "data" / "hpd")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.txt")) == [
        os.path.join("book_1", "chapter_1.txt"), os.path.join("book_1", "chapter_10.txt"),
        os.path.join("book_2", "chapter_1.txt"),
    ]  # fmt: skip
    corpus = load_hpd(dest)
    assert [d.text for d in corpus.documents] == ["Mr and Mrs Dursley. Ten. ", "Dobby. "]


def test_unpack_hpd_never_writes_outside_its_folder(tmp_path):
    archive = write_zip(tmp_path / "evil.zip", {"../../escape/book_1/chapter_1.txt": "text"})
    dest = colab.unpack_hpd(archive, tmp_path / "a" / "b" / "hpd")
    assert (dest / "book_1" / "chapter_1.txt").read_text() == "text"
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    "members, message",
    [
        ({"readme.txt": "x"}, "holds no chapter files"),
        ({"a/book_1/chapter_1.txt": "x", "b/book_1/chapter_1.txt": "y"}, "book folders under a/, b/"),
        ({"book_2/chapter_1.txt": "x"}, r"book folders \[2\], not 1..N"),
    ],
)
def test_unpack_hpd_says_what_is_wrong_with_a_zip(tmp_path, members, message):
    with pytest.raises(LMError, match=message):
        colab.unpack_hpd(write_zip(tmp_path / "hpd.zip", members), tmp_path / "hpd")


def test_unpack_hpd_refuses_what_is_not_a_zip(tmp_path):
    (tmp_path / "hpd.zip").write_text("not a zip")
    with pytest.raises(LMError, match="is not a zip file"):
        colab.unpack_hpd(tmp_path / "hpd.zip", tmp_path / "hpd")
