"""Named configurations. Any field can be overridden: get_preset("cpu", epochs=3)."""

from __future__ import annotations

from lmlib.config import RunConfig
from lmlib.errors import LMError

_AWD_OFF = dict(locked_dropout=False, dropout_embedding=0.0, weight_drop=0.0, alpha=0.0, beta=0.0, tie_weights=False)

PRESETS: dict[str, dict] = {
    # The original study exactly: emb 1024, hidden 1024, 2 layers, dropout 0.65, Adam 1e-3,
    # batch 128, bptt 50, clip 0.25, ReduceLROnPlateau(0.5, 0), 50 epochs, min_freq 3, seed 1234.
    "original": dict(
        emb_dim=1024,
        hid_dim=1024,
        num_layers=2,
        init="original",
        dropout_input=0.65,
        dropout_hidden=0.65,
        dropout_output=0.65,
        **_AWD_OFF,
        optimizer="adam",
        lr=1e-3,
        batch_size=128,
        bptt=50,
        clip=0.25,
        epochs=50,
        lr_factor=0.5,
        lr_patience=0,
        min_freq=3,
        seed=1234,
        protocol="original",
    ),
    # A few seconds on a CPU: for tests and the smoke pipeline.
    "smoke": dict(
        emb_dim=32,
        hid_dim=32,
        num_layers=2,
        init="awd",
        dropout_input=0.1,
        dropout_hidden=0.1,
        dropout_output=0.1,
        **_AWD_OFF,
        optimizer="adam",
        lr=3e-3,
        batch_size=16,
        bptt=20,
        clip=0.25,
        epochs=2,
        subset_tokens=20_000,
        lr_factor=0.5,
        lr_patience=0,
        seed=1234,
    ),
    # The best recipe found for ~10 minutes of a 2-core CPU on the Austen corpus
    # (see benchmarks/time_to_quality.py): AWD-LSTM's regularisers at 256 wide, with an
    # adaptive softmax instead of tied weights (the 7.8k-word output layer is most of a CPU
    # step; the two cannot be combined), small batches (more updates per minute) and a
    # high Adam learning rate. In 2.5-minute runs it beat, at equal wall time, lighter
    # dropout (0.1, no AR/TAR), tied weights with a full softmax, batch 64 and lr 3e-3;
    # cut-offs (1000, 4000) were no better than the default head of 2,000 words. Precision is
    # `mixed`: bf16 autocast on a CPU with bf16 instructions (AVX-512 BF16, AMX) trains ~1.5x
    # faster than fp32 and reaches the same validation perplexity sooner (10 minutes, 2 threads:
    # valid 89.0 / test 125.4 in bf16, 89.1 / 123.6 in fp32; benchmarks/time_to_quality.py).
    # Both have converged by then, yet 512 wide is no better in 10 minutes (valid 90.7, test
    # 126.1 in bf16: `python -m lmlib train --preset cpu --set emb_dim=512 --set hid_dim=512`).
    "cpu": dict(
        emb_dim=256,
        hid_dim=256,
        num_layers=2,
        init="awd",
        dropout_input=0.25,
        dropout_hidden=0.2,
        dropout_output=0.25,
        locked_dropout=True,
        dropout_embedding=0.05,
        weight_drop=0.2,
        tie_weights=False,
        adaptive_softmax=True,
        alpha=2.0,
        beta=1.0,
        optimizer="adam",
        lr=5e-3,
        batch_size=32,
        bptt=35,
        clip=0.25,
        epochs=50,
        max_minutes=10.0,
        lr_factor=0.5,
        lr_patience=0,
        patience=3,
        seed=1234,
        precision="mixed",
    ),
    # AWD-LSTM (Merity et al. 2017, PTB settings: 3 layers, 1150 hidden, 400 emb, tied,
    # dropouts 0.4/0.25/0.4, embedding 0.1, DropConnect 0.5, AR 2, TAR 1, NT-ASGD lr 30,
    # bptt 70, batch 80, clip 0.25, wdecay 1.2e-6), for a GPU.
    "awd": dict(
        emb_dim=400,
        hid_dim=1150,
        num_layers=3,
        init="awd",
        dropout_input=0.4,
        dropout_hidden=0.25,
        dropout_output=0.4,
        locked_dropout=True,
        dropout_embedding=0.1,
        weight_drop=0.5,
        tie_weights=True,
        alpha=2.0,
        beta=1.0,
        optimizer="ntasgd",
        lr=30.0,
        weight_decay=1.2e-6,
        batch_size=80,
        eval_batch_size=10,
        bptt=70,
        variable_bptt=True,
        clip=0.25,
        epochs=300,
        nonmono=5,
        lr_factor=1.0,
        seed=1234,
    ),
    # Zaremba et al. 2014, "small" (Penn Treebank: valid 120.7, test 114.5): 2 x 200, no
    # dropout, all weights U(-0.1, 0.1), SGD lr 1 with the gradient norm clipped at 5 on the
    # loss summed over 20 steps and averaged over the batch = lr 20, clip 0.25 on our per-token
    # mean; lr halved every epoch after epoch 4; 13 epochs; batch 20; bptt 20. fp32, as the
    # paper, also on a GPU: a reproduction should not also test mixed precision.
    "zaremba-small": dict(
        precision="fp32",
        emb_dim=200,
        hid_dim=200,
        num_layers=2,
        init="uniform",
        dropout_input=0.0,
        dropout_hidden=0.0,
        dropout_output=0.0,
        **_AWD_OFF,
        optimizer="sgd",
        lr=20.0,
        batch_size=20,
        eval_batch_size=1,
        bptt=20,
        clip=0.25,
        epochs=13,
        lr_decay_start=5,
        lr_factor=0.5,
        seed=1234,
    ),
}
PRESET_NAMES = tuple(PRESETS)


def get_preset(name: str, **overrides) -> RunConfig:
    """The named preset with `overrides` applied (validated; unknown fields are an error)."""
    if name not in PRESETS:
        raise LMError(f"unknown preset {name!r}: choose one of {', '.join(PRESET_NAMES)}")
    return RunConfig.from_dict({**RunConfig().to_dict(), **PRESETS[name], **overrides})
