"""One place that turns a ModelConfig into a model: the LSTM or the Transformer, per `arch`.

Everything else (training, evaluation, generation, the apps, the report) calls the model only
through the interface both share: `model(ids, hidden, targets=None, reduction="mean") -> LMOutput`,
`init_hidden(batch_size, device)`, `detach_hidden(hidden)`, `vocab_size`, `config`.
"""

from __future__ import annotations

from lmlib.config import ModelConfig
from lmlib.model.head import Hidden, LMOutput, count_parameters  # noqa: F401 (the shared interface's names)
from lmlib.model.lstm import LSTMLanguageModel
from lmlib.model.transformer import TransformerLanguageModel

LanguageModel = LSTMLanguageModel | TransformerLanguageModel  # what shared code's type hints say

ARCHITECTURES = {"lstm": LSTMLanguageModel, "transformer": TransformerLanguageModel}


def build_model(vocab_size: int, config: ModelConfig) -> LanguageModel:
    """The model `config.arch` names, freshly initialised on the CPU."""
    return ARCHITECTURES[config.arch](vocab_size, config)
