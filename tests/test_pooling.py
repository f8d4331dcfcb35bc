"""Rubin's rules against R's mice::pool.scalar (``tests/reference/pooling_reference.R``).

Tolerance: 1e-10 relative (the same closed-form formulas in double precision).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from allianceanalysis.pooling import pool

from .helpers import ROOT

REFERENCE = pd.read_csv(ROOT / "tests" / "reference" / "pooling.csv")
CASES = sorted(REFERENCE["case"].unique())


@pytest.mark.parametrize("case", CASES)
def test_pool_equals_mice_pool_scalar(case: str) -> None:
    ref = REFERENCE[REFERENCE["case"] == case]
    result = pool(ref["q"].to_numpy(), ref["u"].to_numpy(), ref["dfcom"].iloc[0])
    first = ref.iloc[0]
    np.testing.assert_allclose(
        [result.estimate, result.std_error**2, result.df, result.riv, result.fmi],
        [first["qbar"], first["t"], first["df"], first["riv"], first["fmi"]],
        rtol=1e-10,
    )


def test_pool_refuses_a_single_imputation() -> None:
    with pytest.raises(ValueError, match="at least 2 imputations"):
        pool(np.array([1.0]), np.array([0.1]), 10)


def test_pool_without_between_variance_is_the_complete_data_analysis() -> None:
    result = pool(np.full(5, 2.0), np.full(5, 0.25), 40)
    assert result.std_error == pytest.approx(0.5)
    assert result.riv == 0
    assert result.relative_efficiency == pytest.approx(1 / (1 + result.fmi / 5))


def test_pool_interval_uses_the_pooled_degrees_of_freedom() -> None:
    result = pool(np.array([1.0, 1.5, 0.5, 1.2]), np.full(4, 0.04), 30)
    half = stats.t.ppf(0.975, result.df) * result.std_error
    assert result.ci_high - result.estimate == pytest.approx(half)
