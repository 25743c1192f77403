"""The model: LSTMLanguageModel (lstm.py) and the AWD-LSTM regularisers (regularize.py)."""
