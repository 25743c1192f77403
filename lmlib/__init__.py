"""lmlib: word-level LSTM language models, from the original study to AWD-LSTM.

Nothing heavy happens at import time; import the submodules you need, e.g.
`from lmlib.corpus import load_corpus`.
"""

__version__ = "0.1.0"
