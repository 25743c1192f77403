"""Hyperparameter sweeps on Optuna: a search space (space), shared storage (storage), workers (worker), results."""
