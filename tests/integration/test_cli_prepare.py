import json
import subprocess
import sys

from conftest import ROOT

from lmlib.cli import main
from lmlib.data.prepared import load_prepared


def test_prepare_json_has_the_documented_keys(capsys):
    assert main(["prepare", "--corpus", "austen", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("tokens", "train_tokens", "valid_tokens", "test_tokens", "vocab_size"):
        assert isinstance(result[key], int)
    assert result["protocol"] == "original" and result["min_freq"] == 3


def test_prepare_human_output_and_written_data_round_trip(tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["prepare", "--corpus", "austen", "--protocol", "by-book", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vocabulary" in text and "Persuasion" in text and "most frequent" in text
    prepared = load_prepared(out)
    assert prepared.protocol == "by-book" and prepared.splits["test"][-1] == 1
    assert not list(tmp_path.glob(".prepared*"))  # no temporary folder left behind


def test_user_errors_print_one_line_and_no_traceback(tmp_path):
    for args in (["--corpus", "nope"], ["--corpus", "austen", "--min-freq", "0"], ["--corpus", str(tmp_path)]):
        proc = subprocess.run(
            [sys.executable, "-m", "lmlib", "prepare", *args], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1
