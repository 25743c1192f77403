import json
import math

import pytest

from lmlib.config import RunConfig, parse_value
from lmlib.data.splits import resolve_data
from lmlib.errors import LMError
from lmlib.presets import PRESET_NAMES, get_preset


def test_original_preset_is_the_study():
    c = get_preset("original")
    model, train = c.model, c.train
    assert (model.emb_dim, model.hid_dim, model.num_layers) == (1024, 1024, 2)
    assert model.dropout_input == model.dropout_hidden == model.dropout_output == 0.65
    assert (train.optimizer, train.lr, train.batch_size, train.bptt, train.clip, train.epochs) == (
        "adam", 1e-3, 128, 50, 0.25, 50,
    )  # fmt: skip
    data = resolve_data({"corpus": c.data.corpus, "protocol": c.data.protocol, "min_freq": c.data.min_freq})
    assert (train.lr_schedule, train.lr_factor, train.lr_patience, train.seed) == ("plateau", 0.5, 0, 1234)
    assert (data["min_freq"], data["protocol"]) == (3, "original")
    assert not (model.locked_dropout or model.tie_weights or model.weight_drop or model.dropout_embedding)
    assert not (model.alpha or model.beta)


def test_the_original_recipe_is_written_once_as_the_defaults():
    assert get_preset("original") == RunConfig()


def test_every_preset_builds_and_any_field_can_be_overridden():
    for name in PRESET_NAMES:
        assert get_preset(name, epochs=1).train.epochs == 1


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(dropout_input=1.0), "dropout_input must be a finite number in"),
        (dict(dropout_output=-0.1), "dropout_output must be a finite number in"),
        (dict(weight_drop=1.5), "weight_drop must be a finite number in"),
        (dict(batch_size=0), "batch_size must be a whole number >= 1"),
        (dict(optimizer="rmsprop"), "optimizer must be one of"),
        (dict(lr=0), r"lr must be a finite number in \(0, inf\)"),
        (dict(tie_weights=True, adaptive_softmax=True), "cannot be combined"),
        (dict(nonsense=1), "unknown config field"),
        (dict(lr=math.nan), "lr must be a finite number"),
        (dict(lr=math.inf), "lr must be a finite number"),
        (dict(clip=math.nan), "clip must be a finite number"),
        (dict(alpha=math.nan), "alpha must be a finite number"),
        (dict(max_minutes=math.nan), "max_minutes must be a finite number"),
        (dict(seed=10**30), "seed must be a whole number from 0 to"),
        (dict(hid_dim=True), "hid_dim must be a whole number"),
        (dict(lr_schedule="step"), "lr_decay_start is the first epoch of the step schedule"),
        (dict(optimizer="ntasgd"), "set lr_schedule none"),  # no field changes another behind the caller's back
        (dict(patience=0), "patience must be a whole number >= 1 \\(or none\\), got 0: to leave it unset write none"),
        (
            dict(clip=0),
            "clip must be a finite number in \\(0, inf\\) \\(or none\\), got 0: to leave it unset write none",
        ),
        (dict(max_minutes=0.0), "to leave it unset write none, not 0"),
        (dict(lr_factor=1.0), "lr_factor must be a finite number in \\(0, 1\\)"),  # once "no schedule"; now lr_schedule
    ],
)
def test_bad_values_are_clear_errors(overrides, message):
    with pytest.raises(LMError, match=message):
        get_preset("smoke", **overrides)


def test_unknown_preset_and_parse_errors():
    with pytest.raises(LMError, match="unknown preset 'huge'"):
        get_preset("huge")
    assert parse_value("tie_weights", "true") is True
    assert parse_value("cutoffs", "2000,10000") == (2000, 10000)
    assert parse_value("min_freq", "none") is None
    assert parse_value("clip", "none") is None
    with pytest.raises(LMError, match="hid_dim expects a whole number"):
        parse_value("hid_dim", "big")


def test_dict_round_trip():
    c = get_preset("awd")
    assert RunConfig.from_dict(c.to_dict()) == c


def test_one_concern_per_dataclass_and_flat_names_reach_every_field():
    c = get_preset("cpu", hid_dim=64, lr=0.01, device="cpu", corpus="x.txt")
    assert (c.model.hid_dim, c.train.lr, c.runtime.device, c.data.corpus) == (64, 0.01, "cpu", "x.txt")
    assert set(c.to_dict()) == {"data", "model", "train", "runtime"}
    assert c.flat()["hid_dim"] == 64 and len(c.flat()) == sum(len(part) for part in c.to_dict().values())


def write_old_config(folder, config: dict):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"config": config}))
    return folder


def test_old_flat_config_json_still_loads_with_zero_meaning_not_set(tmp_path):
    from lmlib.training.runs import read_config

    old = {"emb_dim": 32, "hid_dim": 32, "clip": 0.0, "max_minutes": 0.0, "patience": 0, "subset_tokens": 0,
           "eval_batch_size": 0, "cutoffs": [], "lr_factor": 1.0, "lr_decay_start": 0, "optimizer": "adam"}  # fmt: skip
    c, _ = read_config(write_old_config(tmp_path / "old", old))
    train = c.train
    assert (train.clip, train.max_minutes, train.patience, train.eval_batch_size) == (None, None, None, None)
    assert (c.data.subset_tokens, c.model.cutoffs, train.lr_schedule) == (None, None, "none")
    zaremba, _ = read_config(
        write_old_config(tmp_path / "zaremba", {"lr_decay_start": 5, "lr_factor": 0.5, "optimizer": "sgd"})
    )
    assert (zaremba.train.lr_schedule, zaremba.train.lr_decay_start) == ("step", 5)
    with pytest.raises(LMError, match="to leave it unset write none"):  # today's spelling only, outside run files
        RunConfig.from_dict(old)


def test_an_explicit_zero_is_never_silently_not_set():
    assert get_preset("cpu").train.patience == 3
    for name in ("patience", "clip", "max_minutes", "subset_tokens", "eval_batch_size", "checkpoint_minutes"):
        with pytest.raises(LMError, match=f"^{name} must be .*got 0: to leave it unset write none, not 0$"):
            get_preset("cpu", **{name: 0})
        assert get_preset("cpu", **{name: None}).flat()[name] is None


def test_unknown_fields_suggest_the_nearest_known_one():
    with pytest.raises(LMError, match=r"unknown config field 'hidden_dim': did you mean hid_dim\?$"):
        get_preset("cpu", hidden_dim=64)
    with pytest.raises(LMError, match="unknown config field 'colour': known fields are adaptive_softmax, alpha"):
        parse_value("colour", "blue")
