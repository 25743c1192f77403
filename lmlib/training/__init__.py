"""Training: device and precision, checkpoints, run directories, evaluation, optimisers, the loop."""
