"""Do saved weights fit the model a config describes? Checked from the file's header, before anything is allocated.

A safetensors file starts with a JSON header giving every tensor's name, dtype and shape,
so a checkpoint can be compared with the model a config.json describes without reading a
single weight or building the model: `planned_weights` computes the shapes from the config
with the model's own layout rules (lstm_sizes, uses_per_layer_lstms, resolve_cutoffs; the
Transformer's blocks), and
tests/test_reliability.py checks them against real models of every kind. (Building the
model on PyTorch's `meta` device would allocate nothing either, but its first use imports
torch._dynamo: seconds added to every `generate`.) A doctored `hid_dim: 4096` is then a
one-line error, not 1.2 GB of allocation first.

What must agree: the names (a tied model stores `embedding.weight` only, an untied one a
separate `decoder.weight` too), the shapes, and the dtypes (float32: see `_check_dtypes`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from lmlib.config import MAX_PARAMETERS, ModelConfig
from lmlib.errors import LMError
from lmlib.model.head import resolve_cutoffs
from lmlib.model.lstm import lstm_sizes, uses_per_layer_lstms
from lmlib.model.transformer import check_attention_fits

Layout = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (dtype name, shape)
# safetensors' dtype names, as torch names them
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}  # fmt: skip
_FLOATING = {"float64", "float32", "float16", "bfloat16"}


def planned_weights(vocab_size: int, model: ModelConfig) -> tuple[dict[str, tuple[int, ...]], int]:
    """(name -> shape of every tensor a checkpoint stores, parameter count) of the model, allocating nothing.

    A Transformer whose attention for a single row cannot fit in this machine's memory is refused here too."""
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (vocab_size, model.emb_dim)}
    if model.arch == "transformer":
        check_attention_fits(model)  # its working memory is quadratic in the context: 65,536 would take 68 GB
        shapes.update(_transformer_shapes(model))
        out_dim = model.emb_dim
    else:
        shapes.update(_lstm_shapes(model))
        out_dim = lstm_sizes(model)[-1][1]
    if model.adaptive_softmax:
        shapes.update(_adaptive_shapes(vocab_size, out_dim, model.cutoffs))
    else:
        shapes["decoder.bias"] = (vocab_size,)
        if not model.tie_weights:  # tied: one matrix, stored once as embedding.weight (§4.5)
            shapes["decoder.weight"] = (vocab_size, out_dim)
    parameters = sum(math.prod(shape) for shape in shapes.values())
    if parameters > MAX_PARAMETERS:
        raise LMError(
            f"a vocabulary of {vocab_size:,} words with emb_dim {model.emb_dim} and hid_dim {model.hid_dim} "
            f"make {parameters:,} parameters, over the {MAX_PARAMETERS:,} allowed; choose smaller sizes"
        )
    return shapes, parameters


def _lstm_shapes(model: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The LSTM layers as lmlib.model.lstm.build_lstms makes them."""
    shapes = {}
    per_layer = uses_per_layer_lstms(model)  # one nn.LSTM per layer, else one multi-layer nn.LSTM
    for k, (i, h) in enumerate(lstm_sizes(model)):
        prefix, suffix = (f"rnns.{k}.", "_l0") if per_layer else ("rnns.0.", f"_l{k}")
        for name, shape in (
            ("weight_ih", (4 * h, i)),
            ("weight_hh", (4 * h, h)),
            ("bias_ih", (4 * h,)),
            ("bias_hh", (4 * h,)),
        ):
            shapes[prefix + name + suffix] = shape
    return shapes


def _transformer_shapes(model: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Positions and nn.TransformerEncoderLayer blocks as lmlib.model.transformer builds them."""
    d, f = model.emb_dim, model.hid_dim
    shapes = {"position.weight": (2 * model.context, d), "blocks.norm.weight": (d,), "blocks.norm.bias": (d,)}
    block = {
        "self_attn.in_proj_weight": (3 * d, d),
        "self_attn.in_proj_bias": (3 * d,),
        "self_attn.out_proj.weight": (d, d),
        "self_attn.out_proj.bias": (d,),
        "linear1.weight": (f, d),
        "linear1.bias": (f,),
        "linear2.weight": (d, f),
        "linear2.bias": (d,),
        "norm1.weight": (d,),
        "norm1.bias": (d,),
        "norm2.weight": (d,),
        "norm2.bias": (d,),
    }
    for k in range(model.num_layers):
        shapes.update({f"blocks.layers.{k}.{name}": shape for name, shape in block.items()})
    return shapes


def _adaptive_shapes(vocab_size: int, in_features: int, cutoffs) -> dict[str, tuple[int, ...]]:
    """nn.AdaptiveLogSoftmaxWithLoss's weights as lmlib.model.lstm builds it (div_value 4, no head bias)."""
    cuts = [*resolve_cutoffs(vocab_size, cutoffs), vocab_size]
    shapes = {"adaptive.head.weight": (cuts[0] + len(cuts) - 1, in_features)}  # shortlist + one row per cluster
    for i in range(len(cuts) - 1):
        hidden = int(in_features // (4.0 ** (i + 1)))
        shapes[f"adaptive.tail.{i}.0.weight"] = (hidden, in_features)
        shapes[f"adaptive.tail.{i}.1.weight"] = (cuts[i + 1] - cuts[i], hidden)
    return shapes


def header_layout(path: str | os.PathLike, prefix: str = "") -> Layout:
    """Dtype and shape of the tensors named `prefix...` in a safetensors file, read from its header alone."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"checkpoint {path} is missing: train the run first (python -m lmlib train)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            layout = {}
            for name in handle.keys():
                if name.startswith(prefix):
                    part = handle.get_slice(name)
                    dtype = _DTYPES.get(part.get_dtype(), part.get_dtype())
                    layout[name[len(prefix) :]] = (dtype, tuple(part.get_shape()))
    except (SafetensorError, OSError, ValueError) as err:
        raise LMError(f"checkpoint {path} is damaged or truncated ({err}): train again or restore it") from None
    return layout


def tensor_layout(tensors: dict[str, torch.Tensor]) -> Layout:
    return {name: (str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in tensors.items()}


def check_weights_file(
    path: str | os.PathLike, vocab_size: int, model: ModelConfig, prefix: str = "", dtype: str = "float32"
) -> None:
    """Refuse a weights file that does not fit the model `model` describes, before building or loading anything.

    `dtype`: what the weights must be stored in: float32 for a run, what an exported folder declares.
    """
    expected, _ = planned_weights(vocab_size, model)
    check_layout(header_layout(path, prefix), expected, model, str(path), dtype)


def check_layout(
    found: Layout, expected: dict[str, tuple[int, ...]], model: ModelConfig, source: str, dtype: str = "float32"
) -> None:
    """Names, tying, dtypes and shapes of saved weights against the model's; each mismatch is a clear LMError."""
    _check_tying(found, expected, model, source)
    _check_dtypes(found, source, dtype)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [n for n in expected if n in found and found[n][1] != expected[n]]
    if missing or unexpected or wrong:
        parts = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {unexpected[:3]}" if unexpected else "",
            ", ".join(f"{n} is {found[n][1]} not {expected[n]}" for n in wrong[:3]),
        ]
        raise LMError(
            f"weights in {source} do not fit this model ({'; '.join(p for p in parts if p)}): the checkpoint "
            "comes from another vocabulary or model shape; use the config.json and vocab.json saved with it"
        )


def _check_tying(found: Layout, expected: dict, model: ModelConfig, source: str) -> None:
    if model.tie_weights and "decoder.weight" in found:
        raise LMError(
            f"weights in {source} hold a separate decoder.weight, but the config says tie_weights is true "
            "(one matrix for input and output): they come from an untied model; set tie_weights false"
        )
    if "decoder.weight" in expected and "decoder.weight" not in found and "embedding.weight" in found:
        raise LMError(
            f"weights in {source} hold no decoder.weight, but the config says tie_weights is false: "
            "they come from a tied model; set tie_weights true"
        )


def _check_dtypes(found: Layout, source: str, declared: str = "float32") -> None:
    """Weights must be float32, as lmlib writes them (its parameters stay fp32 under mixed precision too),
    or the dtype an exported folder declares in its config.json (lmlib export --dtype).

    Integer tensors are not weights at all. Half-precision files are refused rather than
    widened: lmlib never writes them, so one is a file from elsewhere or one converted to save
    space, and its perplexity would no longer be the one results.json recorded. A user who
    halved a file on purpose can convert it back explicitly (load_file, .float(), save_file).
    """
    odd = {name: dtype for name, (dtype, _) in found.items() if dtype != declared}
    if not odd:
        return
    name, dtype = next(iter(sorted(odd.items())))
    if declared != "float32":
        raise LMError(
            f"weights in {source} are {dtype} ({name}), but its config.json declares {declared}: "
            "the files come from different exports; export the model again"
        )
    what = "not floating-point numbers" if dtype not in _FLOATING else "not float32 as lmlib writes weights"
    raise LMError(
        f"weights in {source} are {dtype} ({name}{' and others' if len(odd) > 1 else ''}), {what}: "
        "this file was not written by lmlib; convert it to float32 or restore the original"
    )
