import numpy as np
import pytest
import torch

from lmlib.data.batching import batchify, check_fits, fixed_windows, get_batch, variable_windows
from lmlib.errors import LMError


def test_batchify_folds_contiguous_rows_and_drops_the_remainder():
    data = batchify(np.arange(26), 4)
    assert data.shape == (4, 6)
    assert data[1].tolist() == [6, 7, 8, 9, 10, 11]
    assert data.dtype == torch.long


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = batchify(np.arange(40), 2)  # rows 0..19, 20..39
    x, y = get_batch(data, 0, 5)
    assert x[0].tolist() == [0, 1, 2, 3, 4] and y[0].tolist() == [1, 2, 3, 4, 5]
    x, y = get_batch(data, 17, 5)  # clipped at the end of the row
    assert x[1].tolist() == [37, 38] and y[1].tolist() == [38, 39]


def test_fixed_windows_cover_every_target_once():
    windows = list(fixed_windows(columns=12, bptt=5))
    assert windows == [(0, 5), (5, 5), (10, 1)]
    assert sum(length for _, length in windows) == 11  # columns - 1 targets per row


def test_variable_windows_awd_lengths_and_full_coverage():
    rng = np.random.default_rng(0)
    windows = list(variable_windows(columns=100_001, bptt=70, rng=rng))
    lengths = np.array([length for _, length in windows])
    assert lengths[:-1].min() >= 5 and lengths.max() <= 90
    assert abs(lengths[:-1].mean() - 70 * 0.975) < 1.5  # 95% N(70,5), 5% N(35,5)
    assert (lengths < 50).mean() == pytest.approx(0.05, abs=0.02)
    assert sum(lengths) == 100_000 and windows[0][0] == 0
    starts = [s for s, _ in windows]
    assert all(b - a == la for (a, la), b in zip(windows, starts[1:]))


def test_split_too_small_for_batch_times_bptt_is_a_clear_error():
    with pytest.raises(LMError, match="too small for batch_size"):
        batchify(np.arange(5), 4)
    data = batchify(np.arange(40), 4)  # 10 columns
    check_fits(data, 9)
    with pytest.raises(LMError, match="lower batch_size or bptt"):
        check_fits(data, 10, "valid")
