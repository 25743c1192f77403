import pytest

from lmlib.config import RunConfig, parse_value
from lmlib.errors import LMError
from lmlib.presets import PRESET_NAMES, get_preset


def test_original_preset_is_the_study():
    c = get_preset("original")
    assert (c.emb_dim, c.hid_dim, c.num_layers) == (1024, 1024, 2)
    assert c.dropout_input == c.dropout_hidden == c.dropout_output == 0.65
    assert (c.optimizer, c.lr, c.batch_size, c.bptt, c.clip, c.epochs) == ("adam", 1e-3, 128, 50, 0.25, 50)
    assert (c.lr_factor, c.lr_patience, c.min_freq, c.seed, c.protocol) == (0.5, 0, 3, 1234, "original")
    assert not (c.locked_dropout or c.tie_weights or c.weight_drop or c.dropout_embedding or c.alpha or c.beta)


def test_every_preset_builds_and_any_field_can_be_overridden():
    for name in PRESET_NAMES:
        assert get_preset(name, epochs=1).epochs == 1


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(dropout_input=1.0), "dropout_input must be in"),
        (dict(dropout_output=-0.1), "dropout_output must be in"),
        (dict(weight_drop=1.5), "weight_drop must be in"),
        (dict(batch_size=0), "batch_size must be a whole number >= 1"),
        (dict(optimizer="rmsprop"), "optimizer must be one of"),
        (dict(lr=0), "lr must be > 0"),
        (dict(tie_weights=True, adaptive_softmax=True), "cannot be combined"),
        (dict(nonsense=1), "unknown config field"),
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
    with pytest.raises(LMError, match="hid_dim expects int"):
        parse_value("hid_dim", "big")


def test_dict_round_trip():
    c = get_preset("awd")
    assert RunConfig.from_dict(c.to_dict()) == c
