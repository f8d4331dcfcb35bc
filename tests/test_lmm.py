"""The REML core (allianceanalysis.lmm) against an independent implementation of the same
criterion, and on the cases where a gradient optimiser can go wrong.

The engine-level agreement with lme4 (tests/test_models_reference.py) and with the mixedlm
engine (tests/test_models.py) covers the fitted models; here the closed forms themselves are
checked: the REML criterion at arbitrary θ equals mixedlm's deviance function (an
implementation of lme4's sparse-matrix algorithm) to 1e-12, relative.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
import pytest

from allianceanalysis import lmm
from allianceanalysis.derive import client_table, session_pairs, session_table
from allianceanalysis.engine import (
    _complete_cases,
    _core_problem,
    core_structure,
    fit_lmm,
    fit_lmm_each,
    structure_sums,
)
from allianceanalysis.formula import Formula, design
from allianceanalysis.models import NEXT_SESSION_FIXED
from allianceanalysis.simulate import simulate_study

STRUCTURES = {
    "intercept": (
        "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)",
        "clients",
    ),
    "nested": (f"{NEXT_SESSION_FIXED} + (1 | therapist_id/client_id)", "pairs"),
    "slope": (
        "outcome ~ session + alliance_within + alliance_client_mean + (1 + session | client_id)",
        "table",
    ),
    "uncorrelated": ("outcome ~ session + alliance_within + (session || client_id)", "table"),
}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    sessions = simulate_study(n_clients=400, n_therapists=20, seed=5).sessions
    return {
        "clients": client_table(sessions).query("eligible"),
        "pairs": session_pairs(sessions),
        "table": session_table(sessions),
    }


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_reml_criterion_equals_mixedlms_deviance_at_any_theta(tables, structure: str) -> None:
    formula, table = STRUCTURES[structure]
    reference = fit_lmm(formula, tables[table], engine="mixedlm")
    parsed = Formula.parse(formula)
    frame, _ = _complete_cases(parsed, tables[table])
    y = frame[parsed.response].to_numpy(dtype=float)
    kind = core_structure(parsed, frame)
    problem = _core_problem(kind, structure_sums(kind, y, design(parsed, frame).x, frame))
    rng = np.random.default_rng(3)
    for _ in range(5):
        theta = np.abs(reference.theta * rng.uniform(0.3, 3.0, reference.theta.size))
        if structure == "slope":
            theta[1] = reference.theta[1] * rng.uniform(-3, 3)
        # mixedlm orders a nested model's θ outer first; lme4 and the core, inner first
        ours = theta[::-1] if structure == "nested" else theta
        assert problem.criterion(ours) == pytest.approx(reference.deviance(theta), rel=1e-12)


def test_a_variance_that_a_gradient_method_leaves_at_zero_is_found() -> None:
    """The criterion's gradient vanishes at θ = 0 (it depends on θ²): L-BFGS-B that reaches
    0 stays there, though the inner variance is positive (seen on the pooled PHQ-9 sites,
    tests/test_pooled.py). Started at exactly 0, the core must still find it."""
    rng = np.random.default_rng(8)
    outer = np.repeat(np.arange(3), 300)  # three studies with no study variance
    inner = np.repeat(np.arange(90), 10)  # thirty therapists each, with therapist variance
    x = rng.normal(size=outer.size)
    y = -0.3 * x + rng.normal(0, 0.3, 90)[inner] + rng.normal(0, 0.95, outer.size)
    problem = lmm.Nested.of(y, np.column_stack([np.ones_like(x), x]), outer, inner)
    stuck = lmm._minimise(problem, np.zeros(2))
    assert stuck.x.max() < lmm.SINGULAR_TOLERANCE  # the trap: it stays at 0
    problem.start = lambda: np.zeros(2)
    solution = lmm.solve(problem)
    assert solution.theta[0] == pytest.approx(0.23729209, rel=1e-5)  # mixedlm's optimum
    assert solution.theta[1] == 0.0


def test_a_random_intercept_with_no_group_variance_is_a_singular_fit_at_exactly_zero() -> None:
    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(40), 12)
    x = rng.normal(size=groups.size)
    y = 1 + 0.5 * x + rng.normal(size=groups.size)  # no group effect at all
    problem = lmm.RandomIntercept.of(y, np.column_stack([np.ones_like(x), x]), groups)
    solution = lmm.solve(problem)
    if solution.theta[0] == 0.0:  # the usual outcome here; lme4 reports it the same way
        assert solution.singular
    assert solution.criterion <= problem.criterion(np.array([0.05])) + 1e-9


def test_group_labels_of_any_type_give_the_same_fit(tables) -> None:
    formula, table = STRUCTURES["intercept"]
    data = tables[table].copy()
    as_text = fit_lmm(formula, data)
    data["therapist_id"] = data["therapist_id"].str.removeprefix("T").astype(int)
    as_numbers = fit_lmm(formula, data)
    np.testing.assert_allclose(as_numbers.coefficients["estimate"],
                               as_text.coefficients["estimate"], rtol=1e-7)  # fmt: skip


def test_a_random_slope_problem_too_large_to_lay_out_evaluates_column_by_column_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above MAX_SLOPE_PRODUCTS (10M clients) the groups' outer products are not laid out;
    the criterion computed column by column is the same (to rounding)."""
    rng = np.random.default_rng(0)
    g, s = np.repeat(np.arange(300), 5), np.tile(np.arange(5.0), 300)
    x = np.column_stack([np.ones(1500), s, rng.normal(size=1500)])
    y = rng.normal(size=1500) + 0.3 * s
    laid_out = lmm.RandomSlope.of(y, x, g, s)
    monkeypatch.setattr(lmm, "MAX_SLOPE_PRODUCTS", 0)
    by_column = lmm.RandomSlope.of(y, x, g, s)
    assert laid_out.columns is None and by_column.columns is not None
    for theta in ([1.0, 0.2, 0.5], [0.3, -0.4, 1.2]):
        assert by_column.criterion(theta) == pytest.approx(laid_out.criterion(theta), rel=1e-12)


@pytest.mark.parametrize("kind", ["intercept", "nested"])
def test_groups_of_too_many_sizes_to_gather_by_size_give_the_same_criterion(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Above MAX_SIZE_CLASSES distinct group sizes the inner groups' products are summed group
    by group; the criterion is the same as gathered by size (to rounding, 1e-12)."""
    rng = np.random.default_rng(5)
    inner = np.repeat(np.arange(120), rng.integers(1, 9, 120))
    outer = inner // 12
    x = np.column_stack([np.ones(inner.size), rng.normal(size=inner.size)])
    y = (
        x[:, 1]
        + rng.normal(size=120)[inner]
        + rng.normal(size=10)[outer]
        + rng.normal(size=inner.size)
    )

    def problem() -> lmm._Problem:
        if kind == "nested":
            return lmm.Nested.of(y, x, outer, inner)
        return lmm.RandomIntercept.of(y, x, inner)

    by_size = problem()
    monkeypatch.setattr(lmm, "MAX_SIZE_CLASSES", 0)
    by_group = problem()
    assert by_size.by_size is not None and by_group.by_size is None
    for theta in ([1.0, 0.5], [0.2, 2.0]):
        theta = theta[: by_size.n_theta]
        assert by_group.criterion(theta) == pytest.approx(by_size.criterion(theta), rel=1e-12)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (1 + x | g)", "y ~ x + (1 | h/g)"])
def test_fits_of_several_responses_equal_their_fits_one_at_a_time(formula: str) -> None:
    """fit_lmm_each shares the design and the groups' sums between responses; each fit is
    fit_lmm's of that response (to rounding, 1e-10: the same sums, added in another order)."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(40), 6)
    data = pd.DataFrame({"g": g, "h": g // 8, "x": rng.normal(size=g.size)})
    data["y"] = data["x"] + rng.normal(size=40)[g] + rng.normal(size=g.size)
    shifted = (rng.random(g.size) < 0.3).astype(float)
    responses = [data["y"].to_numpy() + delta * shifted for delta in (0.0, -2.0, 3.5)]
    together = fit_lmm_each(formula, data, responses)
    for response, fit in zip(responses, together, strict=True):
        alone = fit_lmm(formula, data.assign(y=response))
        np.testing.assert_allclose(fit.coefficients.to_numpy(float),
                                   alone.coefficients.to_numpy(float), rtol=1e-10)  # fmt: skip
        assert fit.variances == pytest.approx(alone.variances, rel=1e-10)


def test_responses_given_by_a_generator_are_held_one_at_a_time() -> None:
    """fit_lmm_each reads a generator's responses in turn (the tipping point makes each as it
    is fitted): a response is let go before the one after the next is made, and the fits are
    those of the responses listed."""
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(30), 5)
    data = pd.DataFrame({"g": g, "x": rng.normal(size=g.size)})
    data["y"] = data["x"] + rng.normal(size=30)[g] + rng.normal(size=g.size)
    deltas = (0.0, 1.0, -4.0, 2.5)
    made: list[weakref.ref] = []

    def responses():
        for delta in deltas:
            assert len(made) < 2 or made[-2]() is None  # the loop holds the last one only
            response = data["y"].to_numpy() + delta
            made.append(weakref.ref(response))
            yield response
            del response

    lazily = fit_lmm_each("y ~ x + (1 | g)", data, responses())
    listed = fit_lmm_each("y ~ x + (1 | g)", data, [data["y"].to_numpy() + d for d in deltas])
    assert len(made) == len(deltas)
    for a, b in zip(lazily, listed, strict=True):
        assert a.coefficients.equals(b.coefficients)


def test_unique_columns_equal_numpys_unique_along_columns() -> None:
    """The random-slope model's classes of Z'Z: the distinct columns, in numpy's order, and
    each column's class, as ``numpy.unique(axis=1, return_inverse=True)`` gives them (ties
    in the first rows, repeats, and a single column)."""
    rng = np.random.default_rng(5)
    for n in (1, 7, 5_000):
        values = np.vstack([rng.integers(1, 4, n), rng.integers(0, 3, n) * 0.5,
                            rng.integers(0, 2, n) * 1.25]).astype(float)  # fmt: skip
        expected, inverse = np.unique(values, axis=1, return_inverse=True)
        found, codes = lmm._unique_columns(values)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_array_equal(codes, inverse.ravel())
