"""A CLI you can discover: every field's help and default, "did you mean", a command's own usage, --config and
--print-config, old spellings that work but are shown nowhere. In-process parsing only: nothing trains."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from lmlib.cli import build_parser, main
from lmlib.cli.train import config_from_args
from lmlib.config import field_docs, fields_markdown, value_text
from lmlib.errors import LMError
from lmlib.presets import get_preset


def parse(*args):
    return build_parser().parse_args(["train", *args])


def usage_error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_train_help_shows_every_field_with_its_help_and_default():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest[len("field_") :]: a for a in train._actions if a.dest.startswith("field_")}
    assert list(flags) == [doc.name for doc in field_docs()]  # every field, in declaration order
    for doc in field_docs():
        assert (
            doc.help
            and flags[doc.name].help
            == f"{doc.help} (default {value_text(doc.default)}"
            + (
                ""
                if get_preset("cpu").flat()[doc.name] == get_preset("original").flat()[doc.name]
                else f"; cpu preset {value_text(get_preset('cpu').flat()[doc.name])}"
            )
            + ")"
        )
    text = train.format_help()
    assert "--hid-dim N" in text and "(default 1024; cpu preset 256)" in text and "--logger {tensorboard}|none" in text


def test_a_mistake_gets_the_commands_own_usage_and_a_did_you_mean(capsys):
    err = usage_error(capsys, "train", "--preset", "smoke", "--hidden-dim", "64")
    assert err.startswith("usage: python -m lmlib train ")
    assert (
        "python -m lmlib train: error: unrecognized arguments: --hidden-dim 64 (--hidden-dim: did you mean --hid-dim?)"
        in err
    )
    err = usage_error(capsys, "train", "--preset", "smok")
    assert "invalid choice: 'smok'" in err and "did you mean smoke?" in err
    assert "did you mean train?" in usage_error(capsys, "trian")
    with pytest.raises(LMError, match=r"unknown config field 'hidden_dim': did you mean hid_dim\?"):
        config_from_args(parse("--set", "hidden_dim=64"))


def test_presets_then_config_file_then_flags(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("hid_dim: 64\nemb_dim: 48\nlr: 1e-4\nclip: none\ncutoffs: [10, 20]\nadaptive_softmax: true\n")
    config = config_from_args(parse("--preset", "smoke", "--config", str(path), "--set", "emb_dim=40", "--lr", "0.01"))
    assert (config.model.hid_dim, config.model.emb_dim, config.train.lr) == (64, 40, 0.01)  # flags over the file
    assert config.train.clip is None and config.model.cutoffs == (10, 20) and config.train.epochs == 2  # the preset
    assert config_from_args(parse("--preset", "smoke", "--config", str(path))).train.lr == 1e-4  # YAML's text "1e-4"


def test_print_config_prints_yaml_that_config_reads_back(tmp_path, capsys):
    assert main(["train", "--preset", "awd", "--set", "hid_dim=96", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "hid_dim: 96" in printed and "# -- model" in printed and "none means not set" in printed
    (tmp_path / "awd.yaml").write_text(printed)
    assert config_from_args(parse("--preset", "smoke", "--config", str(tmp_path / "awd.yaml"))) == get_preset(
        "awd", hid_dim=96
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ("hidden_dim: 64\n", "unknown config field 'hidden_dim': did you mean hid_dim?"),
        ("- hid_dim\n", "must hold field: value lines"),
        ("hid_dim: [\n", "is not valid YAML"),
        ("patience: 0\n", "to leave it unset write none"),
        ("lr: fast\n", "lr expects a number, got 'fast'"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path, capsys, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_old_spellings_work_and_are_shown_nowhere():
    parser = build_parser()
    assert parser.parse_args(["evaluate", "--run", "runs/x"]).run_dir == "runs/x"
    assert parser.parse_args(["generate", "--run=runs/x"]).run_dir == "runs/x"
    assert parser.parse_args(["prepare", "--out", "prepared"]).prepared_dir == "prepared"
    assert parser.parse_args(["generate", "--run-dir", "r", "--prompt=--run"]).prompt == "--run"  # a value
    commands = parser._subparsers._group_actions[0].choices
    assert commands["evaluate"]._today(["--run", "a", "--", "--run"]) == ["--run-dir", "a", "--", "--run"]
    for name, command in commands.items():
        text = command.format_help() + command.format_usage()
        assert "--run " not in text and "--run," not in text and "--out" not in text, name
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "x"])  # an alias belongs to its command only


def test_building_the_train_parser_imports_no_torch():
    """`train --help` stays fast: the parser is built from lmlib.config and the presets, torch-free."""
    code = (
        "import sys; from lmlib.cli.options import Parser; from lmlib.cli import train, prepare, evaluate; "
        "c = Parser(prog='x').add_subparsers(); [m.add(c) for m in (train, prepare, evaluate)]; "
        "c.choices['train'].format_help(); print(sorted(m for m in ('torch', 'numpy', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_configuration_page_lists_every_field_as_the_code_describes_it():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert (
        fields_markdown() in page
    )  # regenerate: python -c "from lmlib.config import fields_markdown as f; print(f())"
