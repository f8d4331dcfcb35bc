"""The lme4 formula language with R's semantics, on public data.

R reference: ``tests/reference/formula_reference.R`` (R 4.2.2, lme4 1.1.31, lmerTest; REML,
Satterthwaite) on the High School and Beyond data (nlme's MathAchieve), lme4's sleepstudy and
Penicillin (``tests/reference/data/README.md``). Model matrices: lme4's fixed-effects matrix
(``getME(fit, "X")``: incomplete rows and aliased columns dropped) by column name and three
checksums per column, relative 1e-9 (absolute 1e-9 for sums that are zero). Fits: the issue's
tolerances, fixed effects, SEs and Satterthwaite df relative 1e-4, variance components and
correlations 1e-3, the REML log-likelihood 1e-6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.engine import fit_lmm
from allianceanalysis.formula import Formula, design
from allianceanalysis.models import tidy_fit

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
MODELS = {
    "factors_interaction": (
        "MathAch ~ SES * MEANSES + Sex + Minority + Sector + (SES | School)", "hsb"),
    "transformations": (
        "MathAch ~ I(SES^2) + log(SES + 4) + relevel(factor(Sex), ref = 'Male') + (1 | School)",
        "hsb"),
    "poly_scale": ("MathAch ~ poly(SES, 2) + scale(MEANSES) + Sex:SES + (1 | School)", "hsb"),
    "crossing_uncorrelated": (
        "MathAch ~ (SES + Sex + Minority)^2 + (1 | School) + (0 + SES | School)", "hsb"),
    "missing_rows": ("MathAch ~ SES + Sex + (1 | School)", "hsb_na"),
    "rank_deficient": ("MathAch ~ SES + scale(SES, scale = FALSE) + (1 | School)", "hsb"),
    "double_bar": ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    "crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
}  # fmt: skip


def _data(name: str) -> pd.DataFrame:
    if name == "hsb_na":  # missing values where formula_reference.R puts them
        data = _data("hsb")
        row = np.arange(1, len(data) + 1)
        data.loc[row % 37 == 0, "SES"] = np.nan
        data.loc[row % 101 == 0, "Sex"] = np.nan
        return data
    return pd.read_csv(REFERENCE / "data" / f"{name}.csv")


@pytest.fixture(scope="module")
def fits() -> dict[str, object]:
    return {name: fit_lmm(formula, _data(data)) for name, (formula, data) in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_the_model_matrix_equals_the_one_lme4_used(name: str) -> None:
    formula, data = MODELS[name]
    parsed = Formula.parse(formula)
    frame = _data(data)[parsed.variables].dropna().reset_index(drop=True)
    ours = design(parsed, frame)
    expected = pd.read_csv(REFERENCE / "formula_model_matrix.csv").query("model == @name")
    assert ours.terms == expected["term"].tolist()
    assert len(ours.x) == expected["n_rows"].iloc[0]
    weight = np.arange(1, len(ours.x) + 1) / len(ours.x)
    checks = {"sum": ours.x.sum(axis=0), "sum_squares": (ours.x**2).sum(axis=0),
              "sum_weighted": (ours.x * weight[:, None]).sum(axis=0)}  # fmt: skip
    for column, values in checks.items():
        np.testing.assert_allclose(values, expected[column], rtol=1e-9, atol=1e-9, err_msg=column)


@pytest.mark.parametrize("name", MODELS)
def test_the_fit_equals_lme4_and_lmertest(name: str, fits: dict) -> None:
    ours = pd.DataFrame(tidy_fit(name, fits[name])).set_index("term")
    expected = pd.read_csv(REFERENCE / "formula_lme4.csv").query("model == @name")
    assert sorted(ours.index) == sorted(expected["term"])
    for row in expected.itertuples():
        covariance = row.term.startswith(("var_", "cor_"))
        tolerance = 1e-6 if row.term == "loglik_reml" else 1e-3 if covariance else 1e-4
        assert ours.loc[row.term, "estimate"] == pytest.approx(row.estimate, rel=tolerance), row
        if not pd.isna(row.std_error):
            assert ours.loc[row.term, "std_error"] == pytest.approx(row.std_error, rel=1e-4), row
            assert ours.loc[row.term, "df"] == pytest.approx(row.df, rel=1e-4), row


def test_the_fast_core_fits_uncorrelated_slopes(fits: dict) -> None:
    assert fits["double_bar"].engine == "lmm"
    assert fits["crossing_uncorrelated"].engine == "lmm"


def test_crossed_random_effects_fall_back_to_lme4s_algorithm_and_say_so(fits: dict) -> None:
    assert fits["crossed"].engine == "mixedlm"
    assert (
        "the fast core has no closed form for (1 | plate) + (1 | sample)"
        in (fits["crossed"].messages[0])
    )


def test_rows_with_a_missing_value_are_dropped_and_counted(fits: dict) -> None:
    assert fits["missing_rows"].n_obs == 6921
    assert fits["missing_rows"].n_dropped == 7185 - 6921


def test_an_aliased_column_is_dropped_and_named(fits: dict) -> None:
    assert "dropped 'scale(SES, scale = FALSE)'" in fits["rank_deficient"].messages[0]


def test_implicitly_nested_intercepts_use_the_nested_core() -> None:
    data = _data("hsb").assign(student=lambda d: np.arange(len(d)) // 2)
    data["student"] = data["School"].astype(str) + "-" + data["student"].astype(str)
    explicit = fit_lmm("MathAch ~ SES + (1 | School/student)", data)
    implicit = fit_lmm("MathAch ~ SES + (1 | School) + (1 | student)", data)
    assert implicit.engine == "lmm"
    assert implicit.loglik == pytest.approx(explicit.loglik, rel=1e-10)


def test_a_categorical_keeps_its_own_level_order_as_an_r_factor() -> None:
    data = _data("hsb")
    data["Sex"] = pd.Categorical(data["Sex"], categories=["Male", "Female"])
    assert design(Formula.parse("y ~ Sex"), data).terms == ["Intercept", "SexFemale"]


def test_a_logical_column_is_named_as_r_names_it() -> None:
    data = pd.DataFrame({"y": [1.0, 2.0, 4.0], "b": [True, False, True]})
    assert design(Formula.parse("y ~ b"), data).terms == ["Intercept", "bTRUE"]


@pytest.mark.parametrize(
    ("formula", "term"),
    [
        ("y ~ x + (x:z | g)", "(x:z | g)"),
        ("y ~ x + (1 | log(g))", "(1 | log(g))"),
        ("y ~ x + 1 | g", "1 | g"),
        ("y ~ x +", "x +"),
        ("log(y) ~ x", "log(y)"),
    ],
)  # fmt: skip
def test_an_unsupported_term_is_named_with_what_is_supported(formula: str, term: str) -> None:
    with pytest.raises(ValueError, match="supported are") as caught:
        Formula.parse(formula)
    assert f"'{term}'" in str(caught.value)


def test_an_unknown_function_is_a_plain_error_naming_the_term() -> None:
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [1.0, 2.0, 3.0, 5.0], "g": list("aabb")})
    with pytest.raises(ValueError, match=r"the term 'foo\(x\)' .* cannot be evaluated"):
        fit_lmm("y ~ foo(x) + (1 | g)", data)


def test_a_term_that_is_not_finite_is_a_plain_error() -> None:
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [0.0, 2.0, 3.0, 5.0], "g": list("aabb")})
    with pytest.raises(ValueError, match=r"the term 'log\(x\)' .* is not finite in 1 rows"):
        fit_lmm("y ~ log(x) + (1 | g)", data)


def test_a_text_response_is_refused_by_name() -> None:
    data = pd.DataFrame({"y": list("abcd"), "x": [1.0, 2.0, 3.0, 5.0], "g": list("aabb")})
    with pytest.raises(ValueError, match=r"the column 'y' .* is not numeric \(e.g. 'a'\)"):
        fit_lmm("y ~ x + (1 | g)", data)


def test_a_missing_column_is_a_plain_error_not_a_key_error() -> None:
    with pytest.raises(ValueError, match="the data have no column 'age'"):
        fit_lmm("y ~ log(age) + (1 | g)", pd.DataFrame({"y": [1.0], "g": ["a"]}))


def test_a_design_built_by_chunks_equals_the_whole(monkeypatch) -> None:
    data = _data("hsb")
    formula = Formula.parse("MathAch ~ SES * Sex + Minority:SES + I(SES^2) + (1 | School)")
    whole = design(formula, data)
    monkeypatch.setattr("allianceanalysis.formula.CHUNK_ROWS", 1000)
    chunks = design(formula, data)
    assert chunks.terms == whole.terms
    np.testing.assert_array_equal(chunks.x, whole.x)


def test_text_columns_are_encoded_directly_as_formulaic_encodes_them() -> None:
    from allianceanalysis.formula import _formulaic_design

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60),
                          "band": rng.choice(["61+", "18-25", "26-35"], 60),
                          "site": rng.choice(["b", "a"], 60)})  # fmt: skip
    formula = Formula.parse("y ~ x + band + site")
    fixed = design(formula, frame)
    x, terms = _formulaic_design(formula, frame)
    assert fixed.terms == terms == ["Intercept", "x", "band26-35", "band61+", "siteb"]
    np.testing.assert_array_equal(fixed.x, x)
