"""Rank statistics in core.stats: hand-computed cases and scipy.stats as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from trustlab.core.exceptions import InputError
from trustlab.core.stats import average_ranks, pearson, spearman


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_average_ranks_by_hand():
    # 1 is smallest (rank 1), 2 next (rank 2), the two 3s share ranks 3 and 4: 3.5 each
    ranks = average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]]))
    assert ranks.dtype == torch.float64
    assert ranks.tolist() == [[3.5, 1.0, 3.5, 2.0], [2.5, 2.5, 2.5, 2.5]]


def test_average_ranks_match_scipy_rankdata():
    v = torch.randint(0, 6, (4, 40), generator=torch.Generator().manual_seed(1)).double()  # many ties
    expected = scipy_stats.rankdata(v.numpy(), method="average", axis=1)
    np.testing.assert_array_equal(average_ranks(v).numpy(), expected)
    with pytest.raises(InputError, match=r"v must be a torch tensor of shape \(N, F\), got shape \(4,\)"):
        average_ranks(torch.arange(4.0))


def test_spearman_by_hand():
    a = randn(3, 50)
    torch.testing.assert_close(spearman(a, a), torch.ones(3))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(3))
    torch.testing.assert_close(spearman(a, a.exp()), torch.ones(3))  # ranks only
    # ties share their average rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4)
    tied = spearman(torch.tensor([[1.0, 2.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert tied.item() == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman(torch.ones(1, 5), torch.arange(5.0)[None]).item() == 0.0  # constant map: 0, not NaN
    assert pearson(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 7.0]])).item() == pytest.approx(
        np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1]
    )


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(2)
    a = torch.randint(0, 5, (6, 2, 4, 4), generator=generator).float()  # maps of 32 values in 0..4
    b = a + torch.randint(-2, 3, a.shape, generator=generator).float()  # correlated, also tied
    expected = [scipy_stats.spearmanr(u, v).statistic for u, v in zip(a.flatten(1).numpy(), b.flatten(1).numpy())]
    np.testing.assert_allclose(spearman(a, b).numpy(), expected, atol=1e-6, rtol=0)
    expected = [scipy_stats.pearsonr(u, v).statistic for u, v in zip(a.flatten(1).numpy(), b.flatten(1).numpy())]
    np.testing.assert_allclose(pearson(a, b).numpy(), expected, atol=1e-6, rtol=0)


def test_correlation_errors():
    with pytest.raises(InputError, match=r"maps to compare must have the same shape, got \(2, 3\) and \(2, 4\)"):
        spearman(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputError, match=r"a must have shape \(N, \.\.\.\), got shape \(3,\)"):
        pearson(torch.zeros(3), torch.zeros(3))
    with pytest.raises(InputError, match="b contain 1 NaN or infinite values"):
        spearman(torch.zeros(1, 3), torch.tensor([[0.0, math.nan, 1.0]]))
    with pytest.raises(InputError, match="a must be a torch tensor or numpy array, got list"):
        pearson([[1.0, 2.0]], torch.zeros(1, 2))
