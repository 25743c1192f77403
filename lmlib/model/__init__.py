"""The models: LSTMLanguageModel (lstm.py), TransformerLanguageModel (transformer.py), their shared
output layer and interface (head.py), build_model (build.py), and the AWD-LSTM regularisers (regularize.py)."""
