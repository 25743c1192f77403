"""Test-time methods on a trained model: the cache pointer, dynamic evaluation, and honest tuning.

    cache     the continuous cache pointer (Grave et al. 2016), per-target, scattered by comparison
    dynamic   dynamic evaluation, RMS with decay to the trained weights (Krause et al. 2018)
    score     the one pass over a split that static, cache and dynamic evaluation share
    tuning    settings chosen on valid only, then test scored once (compare_methods)
    records   the same on a saved run, recorded in <run>/test_time.json

Any model with the one entry point `model(ids, hidden, targets, reduction="none")` returning
`nll` (B, T) and `features` (B, T, D), and `init_hidden(batch, device)`, works unchanged.
"""
