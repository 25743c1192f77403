"""How a loaded model computes when it serves: fp32, bf16 or int8, and what `auto` picks on which machine.

What `auto` chooses depends on the CPU's quantised kernels (benchmarks/serving.py measured
int8 on an x86 CPU); both sides are simulated here, so the test holds on any machine.
"""

from __future__ import annotations

import pytest
import torch

from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.pretrained import serving
from lmlib.pretrained.serving import default_serving, prepare_for_serving


def log_probs(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, model.init_hidden(ids.size(0))).log_probs.float()


@pytest.fixture(scope="module")
def fp32(tiny_run) -> Generator:
    return Generator.from_pretrained(tiny_run, "cpu", serving="fp32")


@pytest.mark.parametrize("mode, tolerance", [("bf16", 0.15), ("int8", 0.15)])
def test_each_mode_predicts_close_to_fp32_and_leaves_the_model_alone(fp32, mode, tolerance):
    ids = torch.randint(0, len(fp32.vocab), (2, 10), generator=torch.Generator().manual_seed(1))
    before = {name: t.clone() for name, t in fp32.model.state_dict().items()}
    served, chosen = prepare_for_serving(fp32.model, mode)
    assert chosen == mode
    difference = (log_probs(served, ids) - log_probs(fp32.model, ids)).abs().max().item()
    assert difference <= tolerance, difference
    assert all(torch.equal(before[name], t) for name, t in fp32.model.state_dict().items())  # a copy was served


def test_a_served_model_generates(tiny_run):
    for mode in ("bf16", "int8"):
        generator = Generator.from_pretrained(tiny_run, "cpu", serving=mode)
        assert generator.serving == mode and generator.generate("she said", 8, seed=1).tokens


@pytest.mark.parametrize(
    "device, engine, expected",
    [("cpu", "x86", "int8"), ("cpu", "fbgemm", "int8"), ("cpu", "qnnpack", "fp32"), ("cpu", "none", "fp32"),
     ("cuda", "x86", "fp32"), ("mps", "qnnpack", "fp32")],
)  # fmt: skip
def test_auto_is_int8_where_the_measured_kernels_are_else_fp32(device, engine, expected, monkeypatch):
    monkeypatch.setattr(serving, "quantized_engine", lambda: engine)
    assert default_serving(torch.device(device)) == expected


def test_a_transformer_is_served_in_fp32_by_auto_and_refused_in_int8(monkeypatch):
    from lmlib.model.build import build_model
    from lmlib.presets import get_preset

    monkeypatch.setattr(serving, "quantized_engine", lambda: "x86")
    model = build_model(30, get_preset("transformer").model).eval()
    assert prepare_for_serving(model, "auto") == (model, "fp32")
    with pytest.raises(LMError, match="int8 serving covers LSTM models"):
        prepare_for_serving(model, "int8")


def test_auto_falls_back_to_fp32_when_quantising_fails(fp32, monkeypatch):
    monkeypatch.setattr(serving, "quantized_engine", lambda: "x86")

    def broken(model):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(serving, "quantize_int8", broken)
    served, chosen = prepare_for_serving(fp32.model, "auto")
    assert chosen == "fp32" and served is fp32.model


def test_an_unknown_mode_is_one_line():
    with pytest.raises(LMError, match="serving must be one of auto, fp32, bf16, int8"):
        prepare_for_serving(torch.nn.Linear(2, 2), "int4")
