"""Data: corpora, the basic_english tokenizer, vocabulary, split protocols, batching for BPTT.

Pure functions from text to id arrays; the only I/O is reading corpora and prepared folders.
"""
