"""Parameter recovery: the catalogue's estimates find the truth the data were made with.

Two kinds of truth:

- the simulator's (``allianceanalysis.simulate``) under settings where the model's estimand
  has a closed form (``CLEAN`` and ``UNBOUNDED_OUTCOME`` in ``tests/helpers.py``): the
  early-alliance slope attenuated by one rating's reliability, the between- and
  within-therapist slopes of Baldwin's disaggregation, therapist variances and ICCs;
- the model's own: outcomes drawn from the fitted structure itself (fixed effects, random
  intercepts, slopes, nesting; a logistic model; correlated normals) on a realistic design.

The fast tests use one large sample per model and a tolerance of four standard errors; the
slow ones (``make test-slow``) repeat small studies 1,000 times and check that estimates are
unbiased within Monte Carlo error and that 95% intervals cover the truth 93-97% of the time
(the Monte Carlo SE of a coverage of .95 over 1,000 replicates is 0.7%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from allianceanalysis.derive import client_table, session_pairs, session_table
from allianceanalysis.engine import fit_lmm
from allianceanalysis.models import (
    alliance_disaggregated,
    alliance_icc,
    alliance_next_session,
    alliance_next_session_nested,
    alliance_outcome,
    dropout,
    growth,
    partial_correlation,
    rm_corr,
    therapist_icc,
)
from allianceanalysis.simulate import SimulationParameters, simulate_study

from .helpers import CLEAN, ROUNDING_VAR, UNBOUNDED_OUTCOME

NEXT_BETA = {
    "Intercept": 2.0,
    "outcome_within": 0.3,
    "alliance_within": 0.4,
    "alliance_client_mean": 0.6,
    "session": 0.2,
}
GROWTH_BETA = {
    "Intercept": 5.0,
    "session": 0.8,
    "alliance_within": 0.15,
    "alliance_client_mean": 0.4,
}


def estimates(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("term")


def assert_within(table: pd.DataFrame, truth: dict[str, float], k: float = 4.0) -> None:
    rows = estimates(table)
    for term, value in truth.items():
        estimate, se = rows.loc[term, "estimate"], rows.loc[term, "std_error"]
        assert abs(estimate - value) <= k * se, (term, estimate, value, se)


def variance_se(variance: float, residual: float, n_groups: int, per_group: float) -> float:
    """Large-sample SE of a random-intercept variance (balanced one-way ANOVA)."""
    return np.sqrt(2 / (n_groups - 1)) * (variance + residual / per_group)


# -- truths from the simulator ------------------------------------------------------------------

CLIENT_LEVEL = dict(**CLEAN, **UNBOUNDED_OUTCOME, state_effect=0.0, n_sites=5)


def clients_of(params: SimulationParameters, seed: int) -> pd.DataFrame:
    return client_table(simulate_study(params, seed=seed).sessions)


def test_alliance_outcome_recovers_the_attenuated_early_alliance_slope() -> None:
    p = SimulationParameters(
        **CLIENT_LEVEL, n_clients=20000, n_therapists=400, alliance_sd_therapist=0.0
    )
    rows = estimates(alliance_outcome(clients_of(p, 41), bootstrap=200))
    var_v, var_e = p.alliance_sd_client**2, p.alliance_sd_session**2 + ROUNDING_VAR
    reliability = var_v / (var_v + var_e)
    assert_within(
        rows.reset_index(),
        {
            "alliance_early": p.alliance_effect_within * reliability,
            "outcome_intake": 1 + p.gain_intake_slope,
        },
    )
    residual = (
        p.alliance_effect_within**2 * var_v * (1 - reliability)
        + p.gain_sd_client**2
        + p.measurement_sd**2
        + ROUNDING_VAR
    )
    n = rows.loc["alliance_early", "n_obs"]
    se_t = variance_se(p.outcome_sd_therapist**2, residual, 400, n / 400)
    assert rows.loc["var_therapist", "estimate"] == pytest.approx(
        p.outcome_sd_therapist**2, abs=4 * se_t
    )
    se_e = residual * np.sqrt(2 / (n - 400))
    assert rows.loc["var_residual", "estimate"] == pytest.approx(residual, abs=4 * se_e)


def test_disaggregation_recovers_between_and_within_therapist_slopes() -> None:
    p = SimulationParameters(**CLIENT_LEVEL, n_clients=30000, n_therapists=300)
    table = alliance_disaggregated(clients_of(p, 42))
    n = estimates(table).loc["alliance_client_dev", "n_obs"] / p.n_therapists
    var_u, var_v = p.alliance_sd_therapist**2, p.alliance_sd_client**2
    var_single = var_v + p.alliance_sd_session**2 + ROUNDING_VAR
    within = p.alliance_effect_within * var_v / var_single
    between = (p.alliance_effect_between * var_u + p.alliance_effect_within * var_v / n) / (
        var_u + var_single / n
    )
    assert_within(
        table,
        {
            "alliance_client_dev": within,
            "alliance_therapist_mean": between,
            "between_minus_within": between - within,
        },
    )


def test_therapist_icc_recovers_the_therapist_share_of_outcome_variance() -> None:
    p = SimulationParameters(**CLIENT_LEVEL, n_clients=20000, n_therapists=400)
    rows = estimates(therapist_icc(clients_of(p, 43)))
    var_t = p.alliance_effect_between**2 * p.alliance_sd_therapist**2 + p.outcome_sd_therapist**2
    residual = (
        p.alliance_effect_within**2 * p.alliance_sd_client**2
        + p.gain_sd_client**2
        + p.measurement_sd**2
        + ROUNDING_VAR
    )
    n = rows.loc["icc", "n_obs"]
    assert rows.loc["var_therapist", "estimate"] == pytest.approx(
        var_t, abs=4 * variance_se(var_t, residual, 400, n / 400)
    )
    icc = rows.loc["icc"]
    half_width = (icc["ci_high"] - icc["ci_low"]) / 2
    assert icc["estimate"] == pytest.approx(var_t / (var_t + residual), abs=2 * half_width)
    assert icc["ci_low"] < icc["estimate"] < icc["ci_high"]


def test_alliance_icc_recovers_the_therapist_share_of_alliance_variance() -> None:
    p = SimulationParameters(**CLIENT_LEVEL, n_clients=20000, n_therapists=400)
    rows = estimates(alliance_icc(clients_of(p, 44)))
    total = p.alliance_sd_therapist**2 + p.alliance_sd_client**2 + p.alliance_sd_session**2
    truth = p.alliance_sd_therapist**2 / (total + ROUNDING_VAR)
    icc = rows.loc["icc"]
    assert icc["estimate"] == pytest.approx(truth, abs=2 * (icc["ci_high"] - icc["ci_low"]) / 2)


# -- truths of the models themselves --------------------------------------------------------------


def design(n_clients: int, seed: int) -> dict[str, pd.DataFrame]:
    """A realistic design: the simulator's sessions, dropout, ceiling and missing ratings."""
    sessions = simulate_study(
        n_clients=n_clients, n_therapists=max(20, n_clients // 50), seed=seed
    ).sessions
    return {
        "pairs": session_pairs(sessions),
        "table": session_table(sessions),
        "clients": client_table(sessions),
    }


def draw_next_session(pairs: pd.DataFrame, rng: np.random.Generator, nested: bool) -> pd.DataFrame:
    """outcome_next from the model: X beta + client (and therapist) intercept + error."""
    x = pairs[list(NEXT_BETA)[1:]].to_numpy(float)
    mean = NEXT_BETA["Intercept"] + x @ np.array(list(NEXT_BETA.values())[1:])
    client, n_client = pd.factorize(pairs["client_id"])
    effects = rng.normal(0, 3.0, len(n_client))[client]
    if nested:
        therapist, n_therapist = pd.factorize(pairs["therapist_id"])
        effects = effects + rng.normal(0, 1.0, len(n_therapist))[therapist]
    return pairs.assign(outcome_next=mean + effects + rng.normal(0, 2.0, len(pairs)))


def draw_growth(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """outcome from ``(1 + session | client_id)`` with intercept SD 3, slope SD 0.5, r = -0.4."""
    data = table.dropna(subset=["alliance"]).copy()
    x = data[list(GROWTH_BETA)[1:]].to_numpy(float)
    client, levels = pd.factorize(data["client_id"])
    cov = np.array([[9.0, -0.4 * 3 * 0.5], [-0.4 * 3 * 0.5, 0.25]])
    b = rng.multivariate_normal([0, 0], cov, len(levels))
    data["outcome"] = (
        GROWTH_BETA["Intercept"]
        + x @ np.array(list(GROWTH_BETA.values())[1:])
        + b[client, 0]
        + b[client, 1] * data["session"]
        + rng.normal(0, 2.0, len(data))
    )
    return data


def draw_correlated(
    n_clients: int, sessions: int, rho: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Within-client correlation rho between alliance and outcome, any client means."""
    client = np.repeat(np.arange(n_clients), sessions)
    e1, e2 = rng.normal(size=(2, client.size))
    return pd.DataFrame(
        {
            "client_id": client,
            "alliance": rng.normal(36, 3, n_clients)[client] + e1,
            "outcome": rng.normal(20, 6, n_clients)[client] + rho * e1 + np.sqrt(1 - rho**2) * e2,
        }
    )


def draw_dropout(clients: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    data = clients.dropna(subset=["alliance_early"]).copy()
    data["dropout"] = (rng.random(len(data)) < expit(3.0 - 0.12 * data["alliance_early"])) * 1.0
    return data


def draw_trivariate(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, float]:
    """Intake, early alliance and final outcome with a known partial correlation."""
    cov = np.array([[1.0, 0.2, 0.6], [0.2, 1.0, 0.35], [0.6, 0.35, 1.0]])
    data = pd.DataFrame(
        rng.multivariate_normal([0, 0, 0], cov, n),
        columns=["outcome_intake", "alliance_early", "outcome_final"],
    )
    precision = np.linalg.inv(cov)
    truth = -precision[1, 2] / np.sqrt(precision[1, 1] * precision[2, 2])
    return data, truth


@pytest.fixture(scope="module")
def big_design() -> dict[str, pd.DataFrame]:
    return design(6000, seed=45)


def test_next_session_model_recovers_its_fixed_effects(big_design) -> None:
    data = draw_next_session(big_design["pairs"], np.random.default_rng(1), nested=False)
    table = alliance_next_session(data)
    assert_within(table, NEXT_BETA)
    rows = estimates(table)
    assert rows.loc["var_client", "estimate"] == pytest.approx(9.0, rel=0.1)
    assert rows.loc["var_residual", "estimate"] == pytest.approx(4.0, rel=0.03)


def test_nested_next_session_model_recovers_both_levels(big_design) -> None:
    data = draw_next_session(big_design["pairs"], np.random.default_rng(2), nested=True)
    table = alliance_next_session_nested(data)
    assert_within(table, NEXT_BETA)
    rows = estimates(table)
    assert rows.loc["var_therapist", "estimate"] == pytest.approx(1.0, rel=0.5)
    assert rows.loc["var_client", "estimate"] == pytest.approx(9.0, rel=0.1)


def test_growth_model_recovers_fixed_effects_and_the_random_slope(big_design) -> None:
    table = growth(draw_growth(big_design["table"], np.random.default_rng(3)))
    assert_within(table, GROWTH_BETA)
    rows = estimates(table)
    assert rows.loc["var_client_session", "estimate"] == pytest.approx(0.25, rel=0.15)
    assert rows.loc["cor_client_session", "estimate"] == pytest.approx(-0.4, abs=0.1)


def test_rm_corr_recovers_the_within_client_correlation() -> None:
    data = draw_correlated(3000, 6, 0.3, np.random.default_rng(4))
    row = estimates(rm_corr(data)).loc["r"]
    assert row["ci_low"] < 0.3 < row["ci_high"]
    assert row["estimate"] == pytest.approx(0.3, abs=4 * (row["ci_high"] - row["ci_low"]) / 3.92)


def test_dropout_model_recovers_the_logistic_slope(big_design) -> None:
    table = dropout(draw_dropout(big_design["clients"], np.random.default_rng(5)))
    assert_within(table, {"Intercept": 3.0, "alliance_early": -0.12})


def test_partial_correlation_recovers_its_truth() -> None:
    data, truth = draw_trivariate(20000, np.random.default_rng(6))
    row = estimates(
        partial_correlation(data, "alliance_early", "outcome_final", "outcome_intake")
    ).loc["partial_r"]
    assert row["estimate"] == pytest.approx(truth, abs=4 * (row["ci_high"] - row["ci_low"]) / 3.92)


# -- many replicates: unbiasedness and coverage (slow) -------------------------------------------


def check_replicates(
    estimates_: list[float], lows: list[float], highs: list[float], truth: float
) -> None:
    values = np.asarray(estimates_)
    covered = (np.asarray(lows) <= truth) & (truth <= np.asarray(highs))
    assert values.mean() == pytest.approx(truth, abs=4 * values.std() / np.sqrt(len(values)))
    assert 0.93 <= covered.mean() <= 0.97, covered.mean()


@pytest.mark.slow
def test_replicates_next_session_alliance_within() -> None:
    pairs = design(600, seed=46)["pairs"]
    rng = np.random.default_rng(7)
    rows = [
        estimates(alliance_next_session(draw_next_session(pairs, rng, nested=False))).loc[
            "alliance_within"
        ]
        for _ in range(1000)
    ]
    check_replicates(
        [r["estimate"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
        NEXT_BETA["alliance_within"],
    )


@pytest.mark.slow
def test_replicates_growth_session_slope() -> None:
    table = design(400, seed=47)["table"]
    rng = np.random.default_rng(8)
    rows = [estimates(growth(draw_growth(table, rng))).loc["session"] for _ in range(1000)]
    check_replicates(
        [r["estimate"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
        GROWTH_BETA["session"],
    )


@pytest.mark.slow
def test_replicates_rm_corr() -> None:
    rng = np.random.default_rng(9)
    rows = [estimates(rm_corr(draw_correlated(100, 6, 0.3, rng))).loc["r"] for _ in range(1000)]
    check_replicates(
        [r["estimate"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
        0.3,
    )


@pytest.mark.slow
def test_replicates_dropout_slope() -> None:
    clients = design(1500, seed=48)["clients"]
    rng = np.random.default_rng(10)
    rows = [
        estimates(dropout(draw_dropout(clients, rng))).loc["alliance_early"] for _ in range(1000)
    ]
    check_replicates(
        [r["estimate"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
        -0.12,
    )


@pytest.mark.slow
def test_replicates_partial_correlation_fisher_interval() -> None:
    rng = np.random.default_rng(11)
    rows, truth = [], None
    for _ in range(1000):
        data, truth = draw_trivariate(300, rng)
        rows.append(
            estimates(
                partial_correlation(data, "alliance_early", "outcome_final", "outcome_intake")
            ).loc["partial_r"]
        )
    check_replicates(
        [r["estimate"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
        truth,
    )


# -- moderation: an interaction and a conditional effect (docs/models.md, "moderation") ---------

MODERATION_TRUTH = {"x": 0.5, "x:armB": 0.4}
"""y = 1 + 0.5 x + 0.3 B + 0.4 x·B + u_therapist + e: the alliance-like x's effect is 0.5 in arm
A and 0.9 in arm B."""


def draw_moderated(n_therapists: int, per: int, rng: np.random.Generator) -> pd.DataFrame:
    therapist = np.repeat(np.arange(n_therapists), per)
    x = rng.normal(size=therapist.size)
    b = rng.random(therapist.size) < 0.5
    u = rng.normal(0, 0.5, n_therapists)[therapist]
    y = (1 + MODERATION_TRUTH["x"] * x + 0.3 * b + MODERATION_TRUTH["x:armB"] * x * b + u
         + rng.normal(size=therapist.size))  # fmt: skip
    return pd.DataFrame({"y": y, "x": x, "arm": np.where(b, "B", "A"), "therapist_id": therapist})


def moderated_fit(data: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The interaction row and the conditional effect in arm B (a contrast, Satterthwaite)."""
    fit = fit_lmm("y ~ x * arm + (1 | therapist_id)", data)
    effect = fit.contrast({"x": 1.0, "x:armB": 1.0}).iloc[0]
    return fit.coefficients.loc["x:armB"], effect


def test_moderation_recovers_the_interaction_and_the_conditional_effect() -> None:
    interaction, effect = moderated_fit(draw_moderated(200, 25, np.random.default_rng(48)))
    truth = MODERATION_TRUTH["x:armB"]
    assert abs(interaction["estimate"] - truth) < 4 * interaction["std_error"]
    assert abs(effect["estimate"] - 0.9) < 4 * effect["std_error"]


@pytest.mark.slow
def test_replicates_moderation_interaction_and_conditional_effect() -> None:
    rng = np.random.default_rng(49)
    fits = [moderated_fit(draw_moderated(40, 10, rng)) for _ in range(1000)]
    for which, truth in ((0, MODERATION_TRUTH["x:armB"]), (1, 0.9)):
        rows = [f[which] for f in fits]
        check_replicates([r["estimate"] for r in rows], [r["ci_low"] for r in rows],
                         [r["ci_high"] for r in rows], truth)  # fmt: skip
