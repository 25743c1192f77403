"""`import-original`: the study's state dict, vocab.json and config.json become a run that gives the same numbers.

The study's files are made here as the study made them: benchmarks/reference.py's OriginalLSTM
(the study's model class) at tiny sizes, `torch.save(model.state_dict())`, a word -> index
vocabulary and the config.json keys of its app/models/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from reference import OriginalLSTM

from lmlib.cli import main
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.training.importing import import_original
from lmlib.training.runs import read_config, read_results

SIZES = dict(seq_len=5, batch_size=4, emb_dim=8, hid_dim=12, num_layers=2, dropout_rate=0.5)
WORDS = ["<unk>", "<eos>"] + [f"w{i}" for i in range(28)]


def study_files(folder: Path, words: list[str], layers: int = 2, **config) -> dict[str, Path]:
    """What the study left: weights of its model class, vocab.json (word -> index), config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {**SIZES, "num_layers": layers, **config}
    torch.manual_seed(7)
    model = OriginalLSTM(len(words), SIZES["emb_dim"], SIZES["hid_dim"], layers, SIZES["dropout_rate"])
    torch.save(model.state_dict(), folder / "best-val-lstm_lm.pt")
    (folder / "vocab.json").write_text(json.dumps({word: i for i, word in enumerate(words)}))
    (folder / "config.json").write_text(json.dumps(sizes))
    names = {"state_dict": "best-val-lstm_lm.pt", "vocab": "vocab.json", "config": "config.json"}
    return {key: folder / name for key, name in names.items()} | {"model": model.eval()}


def reference_log_probs(model: OriginalLSTM, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(ids, model.init_hidden(ids.size(0), "cpu"))
    return torch.log_softmax(logits, dim=-1)


def imported(files: dict, run_dir: Path, **kw) -> dict:
    return import_original(files["state_dict"], files["vocab"], files["config"], run_dir, **kw)


def test_the_imported_run_predicts_exactly_as_the_study_model(tmp_path):
    files = study_files(tmp_path / "study", WORDS)
    result = imported(files, tmp_path / "runs" / "original-hp")
    run = tmp_path / "runs" / "original-hp"
    generator = Generator.from_run(run, "cpu")
    ids = torch.randint(0, len(WORDS), (3, 9))
    with torch.no_grad():
        ours = generator.model(ids, generator.model.init_hidden(3)).log_probs
    torch.testing.assert_close(ours, reference_log_probs(files["model"], ids))
    config, info = read_config(run)
    assert (config.model.emb_dim, config.model.hid_dim, config.model.num_layers) == (8, 12, 2)
    assert config.model.dropout_input == config.model.dropout_output == 0.5 and config.train.bptt == 5
    assert info["imported_from"]["state_dict"].endswith("best-val-lstm_lm.pt") and not info["specials_moved"]
    saved = read_results(run)
    assert saved["imported"] is True and saved["valid_ppl"] is None and saved["stopped"] == "imported"
    assert result["parameters"] == saved["parameters"] == sum(t.numel() for t in files["model"].state_dict().values())
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "model.safetensors", "results.json", "vocab.json"]


def test_a_vocabulary_with_the_specials_elsewhere_is_remapped(tmp_path):
    words = WORDS[2:7] + ["<eos>"] + WORDS[7:] + ["<unk>"]  # <eos> at 5, <unk> last
    files = study_files(tmp_path / "study", words)
    result = imported(files, tmp_path / "run")
    generator = Generator.from_run(tmp_path / "run", "cpu")
    assert generator.vocab.itos[:2] == ("<unk>", "<eos>") and result["specials_moved"]
    study_ids = torch.randint(0, len(words), (2, 6))
    our_ids = torch.tensor([[generator.vocab.stoi[words[i]] for i in row] for row in study_ids.tolist()])
    with torch.no_grad():
        ours = generator.model(our_ids, generator.model.init_hidden(2)).log_probs
    expected = reference_log_probs(files["model"], study_ids)
    columns = [words.index(word) for word in generator.vocab.itos]  # lmlib's word i is the study's column
    torch.testing.assert_close(ours, expected[..., columns])


def test_generate_evaluate_and_the_panel_use_the_imported_run(tmp_path, capsys):
    """With --corpus, valid/test perplexity are measured on it and are what `evaluate` says."""
    corpus = tmp_path / "text.txt"
    torch.manual_seed(0)
    corpus.write_text(" ".join(f"w{i}" for i in torch.randint(0, 12, (3000,)).tolist()) + "\n")
    words = list(prepare(load_corpus(corpus)).vocab.itos)
    files = study_files(tmp_path / "study", words)
    run = tmp_path / "runs" / "imported"
    args = [
        "import-original",
        "--state-dict",
        str(files["state_dict"]),
        "--vocab",
        str(files["vocab"]),
        "--config",
        str(files["config"]),
        "--run-dir",
        str(run),
        "--corpus",
        str(corpus),
        "--device",
        "cpu",
    ]
    assert main(args) == 0 and "valid ppl" in capsys.readouterr().out
    saved = read_results(run)
    assert main(["evaluate", "--run-dir", str(run), "--device", "cpu", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["valid_ppl"] == pytest.approx(saved["valid_ppl"], rel=1e-9) and saved["test_ppl"] > 1
    assert main(["generate", "--run-dir", str(run), "--prompt", "w1 w2", "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"]
    from lmlib.apps.panel import choose_runs, panel_for_runs

    assert choose_runs(run.parent) == [run]
    panel = panel_for_runs([run], background=False)
    panel.random_seed.value, panel.length.value = False, 10
    panel.generate_button.click()
    assert panel.status.value.startswith("done") and "Next word" in panel.distribution.value


def test_a_corpus_with_another_vocabulary_is_refused_and_leaves_nothing(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text("a b c d e f g " * 400)
    files = study_files(tmp_path / "study", WORDS)
    with pytest.raises(LMError, match="gives another vocabulary than the imported vocab.json"):
        imported(files, tmp_path / "run", corpus=str(corpus), device="cpu")
    assert not (tmp_path / "run").exists()


class RunsCode:
    """What a pickled whole model can do on load: call any function (here os.mkdir)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    files = study_files(tmp_path / "study", WORDS)
    torch.save({"model": RunsCode(tmp_path / "ran")}, files["state_dict"])
    with pytest.raises(LMError, match="whole pickled model is refused, because loading it would run code"):
        imported(files, tmp_path / "run")
    assert not (tmp_path / "ran").exists()


def broken(files: dict, tmp_path: Path, what: str) -> dict:
    """The study's files with one thing wrong."""
    if what == "not torch":
        files["state_dict"].write_text("these are not weights")
    elif what == "missing key":
        state = torch.load(files["state_dict"], weights_only=True)
        state.pop("fc.bias")
        torch.save(state, files["state_dict"])
    elif what == "three layers":
        files["config"].write_text(json.dumps({**SIZES, "num_layers": 3}))
    elif what == "wider":
        files["config"].write_text(json.dumps({**SIZES, "hid_dim": 16}))
    elif what == "fewer words":
        files["vocab"].write_text(json.dumps({word: i for i, word in enumerate(WORDS[:-1])}))
    elif what == "config key":
        files["config"].write_text(json.dumps({k: v for k, v in SIZES.items() if k != "hid_dim"}))
    elif what == "no eos":
        files["vocab"].write_text(json.dumps({("<end>" if w == "<eos>" else w): i for i, w in enumerate(WORDS)}))
    elif what == "gap":
        files["vocab"].write_text(json.dumps({w: i + (i > 4) for i, w in enumerate(WORDS)}))
    elif what == "list":
        files["vocab"].write_text(json.dumps(WORDS))
    elif what == "bad dropout":
        files["config"].write_text(json.dumps({**SIZES, "dropout_rate": 1.5}))
    return files


@pytest.mark.parametrize(
    "what, message",
    [
        ("not torch", "cannot be read as weights .* torch.save\\(model.state_dict\\(\\), path\\)"),
        ("missing key", r"missing \['fc.bias'\]"),
        ("three layers", "the weights have 2 LSTM layer\\(s\\), config.json says 3"),
        ("wider", r"fc.weight is \(30, 12\), but .* hid_dim 16\) make it \(30, 16\)"),
        ("fewer words", r"embedding.weight is \(30, 8\), but vocab.json \(29 words\)"),
        ("config key", "lacks hid_dim"),
        ("no eos", "has no <eos>"),
        ("gap", "does not number its 30 words 0..29 once each"),
        ("list", "must map each word to its index"),
        ("bad dropout", "dropout_input"),
    ],
)
def test_wrong_files_get_a_clear_message(tmp_path, what, message):
    files = broken(study_files(tmp_path / "study", WORDS), tmp_path, what)
    with pytest.raises(LMError, match=message):
        imported(files, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_cli_says_what_is_wrong_in_one_line_and_never_overwrites_a_run(tmp_path, capsys):
    files = study_files(tmp_path / "study", WORDS)
    args = ["import-original", "--state-dict", str(files["state_dict"]), "--vocab", str(files["vocab"]),
            "--config", str(files["config"]), "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert "no perplexity measured (pass --corpus hpd" in capsys.readouterr().out
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds a run" in err and err.count("\n") == 1
    missing = [*args[:2], str(tmp_path / "nope.pt"), *args[3:-1], str(tmp_path / "other")]
    assert main(missing) == 2 and "does not exist" in capsys.readouterr().err


def test_notebook_03_compares_trained_runs_and_leaves_imported_ones_out(tmp_path, tiny_run):
    """An imported model has no training history: listing runs for the comparison skips it; named, it shows NaN."""
    import shutil

    from lmlib.report.compare import comparison_table, load_records

    runs = tmp_path / "runs"
    shutil.copytree(tiny_run, runs / "smoke")
    words = list(json.loads((tiny_run / "vocab.json").read_text())["itos"])
    imported(study_files(tmp_path / "study", words), runs / "original-hp")
    assert [r.name for r in load_records(runs)] == ["smoke"]
    table = comparison_table(load_records(runs, ["smoke", "original-hp"]))
    assert table.loc["original-hp", "valid ppl"] != table.loc["original-hp", "valid ppl"]  # NaN: not measured
