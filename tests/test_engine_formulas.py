"""Random terms as lme4 users write them, on lme4's own public data (the rest of the formula
language: tests/test_formula.py).

R reference: ``tests/reference/lme4_public_reference.R`` (lme4 1.1.31, lmerTest, REML,
Satterthwaite) on lme4's sleepstudy and Pastes data (``tests/reference/data/README.md``).
Tolerances as the catalogue's (tests/test_models_reference.py): estimates, SEs and df relative
1e-4, variance components and correlations 1e-3, the REML log-likelihood 1e-6.
"""

from __future__ import annotations

import pandas as pd
import pytest

from allianceanalysis.engine import Formula, fit_lmm
from allianceanalysis.models import tidy_fit

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
FITS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy.csv"),
    "pastes": ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", "pastes.csv"),
}


@pytest.mark.parametrize("name", FITS)
@pytest.mark.parametrize("engine", ["lmm", "mixedlm"])
def test_lme4_users_formulas_fit_and_equal_lme4(name: str, engine: str) -> None:
    formula, data = FITS[name]
    fit = fit_lmm(formula, pd.read_csv(REFERENCE / "data" / data), engine)
    ours = pd.DataFrame(tidy_fit(name, fit)).set_index("term")
    expected = pd.read_csv(REFERENCE / "lme4_public.csv").query("model == @name")
    for row in expected.itertuples():
        covariance = row.term.startswith(("var_", "cor_"))
        tolerance = 1e-6 if row.term == "loglik_reml" else 1e-3 if covariance else 1e-4
        assert ours.loc[row.term, "estimate"] == pytest.approx(row.estimate, rel=tolerance), row
        if not pd.isna(row.std_error):
            assert ours.loc[row.term, "std_error"] == pytest.approx(row.std_error, rel=1e-4)
            assert ours.loc[row.term, "df"] == pytest.approx(row.df, rel=1e-4)


def test_a_slope_without_its_intercept_reads_as_lme4_reads_it() -> None:
    assert Formula.parse("y ~ x + (x | g)") == Formula.parse("y ~ x + (1 + x | g)")


def test_a_missing_column_is_a_plain_error_not_a_key_error() -> None:
    with pytest.raises(ValueError, match="the data have no column 'age'"):
        fit_lmm("y ~ age + (1 | g)", pd.DataFrame({"y": [1.0], "g": ["a"]}))
