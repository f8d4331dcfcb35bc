"""The simulator: its outputs carry the parameters it was given.

Each mechanism is recovered from the *observable* sessions with an estimator that is unbiased
for it when the other mechanisms are switched off (``CLEAN``: no ceiling, no formation trend,
no ruptures, no missing ratings, no dropout, eight sessions each). Tolerances are four standard
errors (stated per test), with fixed seeds, so a test fails only when the simulator is wrong.
The calibration test checks that the *default* parameters reproduce the literature's targets.
"""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from allianceanalysis.config import DatasetSpec
from allianceanalysis.instruments import INSTRUMENTS, get_instrument
from allianceanalysis.io import check_dataset
from allianceanalysis.simulate import (
    SimulationParameters,
    rescale,
    simulate_study,
    split_items,
    with_items,
)

from .helpers import (
    ALLIANCEANALYSIS,
    CLEAN,
    DEMO,
    ROUNDING_VAR,
    UNBOUNDED_OUTCOME,
    complete,
    within,
)

# -- design and determinism ----------------------------------------------------------------


def test_same_seed_gives_identical_data() -> None:
    a = simulate_study(n_clients=80, n_therapists=8, seed=5)
    b = simulate_study(n_clients=80, n_therapists=8, seed=5)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    pd.testing.assert_frame_equal(a.latent, b.latent)


def test_different_seeds_give_different_data() -> None:
    a = simulate_study(n_clients=80, n_therapists=8, seed=5).sessions
    b = simulate_study(n_clients=80, n_therapists=8, seed=6).sessions
    assert not a["ors"].equals(b["ors"])


def test_demo_data_is_reproduced_by_its_recorded_command(tmp_path: Path) -> None:
    out = tmp_path / "sessions.csv"
    executable = ALLIANCEANALYSIS
    subprocess.run(
        [str(executable), "simulate", str(out), "--preset", "demo"], check=True, capture_output=True
    )
    assert filecmp.cmp(out, DEMO, shallow=False), "regenerate with `make demo-data`"
    clinic = tmp_path / "clinic_b.csv"
    subprocess.run(
        [
            str(executable),
            "simulate",
            str(clinic),
            "--preset",
            "demo-clinic-b",
            "--seed",
            "20261126",
            "--clinic-export",
        ],
        check=True,
        capture_output=True,
    )
    assert filecmp.cmp(clinic, DEMO.with_name("clinic_b.csv"), shallow=False)


def test_hierarchy_is_sites_therapists_clients_sessions() -> None:
    study = simulate_study(n_clients=200, n_therapists=12, n_sites=3, seed=2)
    s = study.sessions
    assert s.groupby("client_id")["therapist_id"].nunique().max() == 1
    assert s.groupby("therapist_id")["site_id"].nunique().max() == 1
    assert s["site_id"].nunique() == 3
    sessions_are_consecutive = s.groupby("client_id")["session"].apply(
        lambda x: list(x) == list(range(1, len(x) + 1))
    )
    assert sessions_are_consecutive.all()
    assert (s.groupby("client_id")["session_date"].diff().dropna() > pd.Timedelta(0)).all()


def test_scores_stay_within_the_instrument_ranges() -> None:
    s = simulate_study(n_clients=2000, n_therapists=40, seed=3).sessions
    assert s["ors"].between(0, 40).all() or s["ors"].dropna().between(0, 40).all()
    assert s["srs"].dropna().between(0, 40).all()
    assert (s["srs"].dropna() * 10 % 1 == 0).all()


def test_end_status_is_planned_dropout_or_ongoing() -> None:
    study = simulate_study(n_clients=500, n_therapists=20, seed=4)
    assert set(study.sessions["end_status"]) == {"planned", "dropout", "ongoing"}
    last = study.sessions.groupby("client_id").last()
    planned = study.clients.set_index("client_id").loc[last.index]
    reached_plan = last["session"] == planned["planned_sessions"]
    assert (reached_plan[last["end_status"] == "planned"]).all()
    assert not (reached_plan[last["end_status"] == "dropout"]).any()


def test_invalid_parameters_are_refused_with_reasons() -> None:
    with pytest.raises(ValueError, match="n_therapists must be at least n_sites"):
        SimulationParameters(n_therapists=2, n_sites=3)
    with pytest.raises(ValueError, match="outcome='srs' is an alliance scale"):
        SimulationParameters(outcome="srs")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"feedback": "client"},
        {"outcome": "phq9"},
        {"outcome": "gad7", "alliance": "wai_sr"},
        {"outcome": "oq45"},
    ],
)
def test_simulated_data_passes_validation(changes: dict, tmp_path: Path) -> None:
    study = simulate_study(n_clients=150, n_therapists=10, seed=8, **changes)
    path = tmp_path / "s.parquet"
    study.sessions.to_parquet(path)
    p = study.parameters
    result = check_dataset(DatasetSpec(name="s", path=path, outcome=p.outcome, alliance=p.alliance))
    assert result.problems.empty
    assert result.summary["rows"]["used"] == len(study.sessions)


def test_item_columns_sum_back_to_the_totals(tmp_path: Path) -> None:
    study = simulate_study(n_clients=150, n_therapists=10, seed=9)
    path = tmp_path / "items.csv"
    with_items(study.sessions, seed=9).to_csv(path, index=False)
    result = check_dataset(DatasetSpec(name="s", path=path))
    np.testing.assert_allclose(result.sessions["ors"], study.sessions["ors"], atol=1e-9)
    np.testing.assert_allclose(result.sessions["srs"], study.sessions["srs"], atol=1e-9)


@pytest.mark.parametrize("key", [k for k, inst in INSTRUMENTS.items() if inst.sums_items])
def test_split_items_are_in_range_and_sum_exactly(key: str) -> None:
    inst = get_instrument(key)
    rng = np.random.default_rng(0)
    totals = rescale(rng.uniform(0, 40, 5000), inst)
    totals[::17] = np.nan
    items = split_items(totals, inst, rng)
    present = ~np.isnan(totals)
    np.testing.assert_allclose(items[present].sum(axis=1), totals[present], atol=1e-9)
    assert (items[present] >= inst.item_min).all() and (items[present] <= inst.item_max).all()
    assert np.isnan(items[~present]).all()
    assert items[present].std(axis=1).mean() > 0  # items are not all equal


def test_other_instruments_are_linear_maps_of_the_same_latent_scores() -> None:
    ors = simulate_study(n_clients=300, n_therapists=10, seed=12)
    phq = simulate_study(n_clients=300, n_therapists=10, seed=12, outcome="phq9")
    expected = rescale(ors.latent["outcome_latent"].to_numpy(), get_instrument("phq9"))
    observed = phq.sessions["phq9"].to_numpy()
    present = ~np.isnan(observed)
    np.testing.assert_array_equal(observed[present], expected[present])
    assert phq.truth()["outcome_scale"] == pytest.approx(-27 / 40)


# -- recovery of each mechanism ----------------------------------------------------------------


def test_alliance_variance_components_are_recovered() -> None:
    p = SimulationParameters(**CLEAN, n_clients=20000, n_therapists=1000, n_sites=10)
    s = complete(simulate_study(p, seed=21).sessions)
    var_session = s.groupby("client_id")["srs"].var().mean()
    clients = s.groupby("client_id").agg(srs=("srs", "mean"), therapist=("therapist_id", "first"))
    fit = smf.mixedlm("srs ~ 1", clients, groups=clients["therapist"]).fit(reml=True)
    var_therapist, var_client_mean = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    n_per = len(clients) / clients["therapist"].nunique()
    # Sampling SEs (balanced one-way random-effects ANOVA): tolerances of four SEs.
    se_session = (p.alliance_sd_session**2) * np.sqrt(2 / (len(s) - len(clients)))
    assert var_session == pytest.approx(p.alliance_sd_session**2 + ROUNDING_VAR, abs=4 * se_session)
    expected_client_mean = p.alliance_sd_client**2 + (var_session / 8)
    se_client = expected_client_mean * np.sqrt(2 / (len(clients) - 1000))
    assert var_client_mean == pytest.approx(expected_client_mean, abs=4 * se_client)
    se_therapist = np.sqrt(2 / 999) * (p.alliance_sd_therapist**2 + expected_client_mean / n_per)
    assert var_therapist == pytest.approx(p.alliance_sd_therapist**2, abs=4 * se_therapist)


def test_alliance_autocorrelation_is_recovered() -> None:
    p = SimulationParameters(**{**CLEAN, "alliance_ar": 0.5}, n_clients=20000, n_therapists=200)
    s = complete(simulate_study(p, seed=22).sessions)
    diff = s.groupby("client_id")["srs"].diff()
    previous = diff.groupby(s["client_id"]).shift()
    pairs = pd.DataFrame({"d": diff, "d_prev": previous}).dropna()
    # For AR(1) states, corr(Δe_t, Δe_t-1) = -(1 - rho) / 2 whatever the stable effects.
    estimate = 1 + 2 * pairs["d"].corr(pairs["d_prev"])
    se = 2 * np.sqrt(3 / len(pairs))  # pairs overlap within clients: inflated SE
    assert estimate == pytest.approx(0.5, abs=4 * se)
    # and the states keep their stationary variance: var(Δe) = 2 var(e) (1 - rho)
    variance = diff.var() / (2 * (1 - 0.5)) - ROUNDING_VAR
    se_var = p.alliance_sd_session**2 * np.sqrt(2 * 3 / diff.notna().sum())
    assert variance == pytest.approx(p.alliance_sd_session**2, abs=4 * se_var)


@pytest.fixture(scope="module")
def gain_study():
    p = SimulationParameters(
        **CLEAN,
        **UNBOUNDED_OUTCOME,
        n_clients=30000,
        n_therapists=300,
        n_sites=5,
        measurement_sd=1.0,
        state_effect=0.0,
    )
    return p, complete(simulate_study(p, seed=23).sessions)


def test_final_outcome_depends_on_intake_and_alliance_components(gain_study) -> None:
    p, s = gain_study
    clients = s.groupby("client_id").agg(
        intake=("ors", "first"),
        final=("ors", "last"),
        alliance=("srs", "mean"),
        therapist=("therapist_id", "first"),
    )
    clients["therapist_mean"] = clients.groupby("therapist")["alliance"].transform("mean")
    clients["client_dev"] = clients["alliance"] - clients["therapist_mean"]
    fit = smf.ols("final ~ intake + therapist_mean + client_dev", clients).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(clients["therapist"])[0]}
    )
    # Expected slopes: the client mean of 8 sessions carries state noise (var e / 8), and a
    # therapist mean of n clients carries client noise: both attenuate (Baldwin et al., 2007).
    var_v, var_u = p.alliance_sd_client**2, p.alliance_sd_therapist**2
    noise = (p.alliance_sd_session**2 + ROUNDING_VAR) / 8
    n = len(clients) / p.n_therapists
    within_slope = p.alliance_effect_within * var_v / (var_v + noise)
    between_slope = (p.alliance_effect_between * var_u + p.alliance_effect_within * var_v / n) / (
        var_u + (var_v + noise) / n
    )
    expected = {
        "intake": 1 + p.gain_intake_slope,
        "client_dev": within_slope,
        "therapist_mean": between_slope,
    }
    for term, value in expected.items():
        assert fit.params[term] == pytest.approx(value, abs=4 * fit.bse[term]), term


def test_early_alliance_effect_on_final_outcome_is_recovered(gain_study) -> None:
    p, s = gain_study
    clients = s.groupby("client_id").agg(
        intake=("ors", "first"), final=("ors", "last"), therapist=("therapist_id", "first")
    )
    clients["early"] = s[s["session"] == 3].set_index("client_id")["srs"]
    clients["early_dev"] = within(clients, "early", "therapist")
    clients["intake_dev"] = within(clients, "intake", "therapist")
    clients["final_dev"] = within(clients, "final", "therapist")
    fit = smf.ols("final_dev ~ intake_dev + early_dev", clients).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(clients["therapist"])[0]}
    )
    rounding = 1 + ROUNDING_VAR / (p.alliance_sd_client**2 + p.alliance_sd_session**2)
    expected = p.implied()["early_alliance_slope_within"] / rounding
    assert fit.params["early_dev"] == pytest.approx(expected, abs=4 * fit.bse["early_dev"])


def test_between_therapist_alliance_effect_exceeds_the_within_effect(gain_study) -> None:
    p, s = gain_study
    assert p.alliance_effect_between > p.alliance_effect_within
    clients = s.groupby("client_id").agg(
        intake=("ors", "first"),
        final=("ors", "last"),
        alliance=("srs", "mean"),
        therapist=("therapist_id", "first"),
    )
    clients["gain"] = clients["final"] - clients["intake"]
    therapists = clients.groupby("therapist")[["alliance", "gain"]].mean()
    between_slope = np.polyfit(therapists["alliance"], therapists["gain"], 1)[0]
    within_slope = np.polyfit(
        within(clients, "alliance", "therapist"), within(clients, "gain", "therapist"), 1
    )[0]
    assert between_slope > within_slope


def test_therapist_share_of_outcome_variance_is_recovered(gain_study) -> None:
    p, s = gain_study
    clients = s.groupby("client_id").agg(
        intake=("ors", "first"), final=("ors", "last"), therapist=("therapist_id", "first")
    )
    fit = smf.mixedlm("final ~ intake", clients, groups=clients["therapist"]).fit(reml=True)
    expected = p.alliance_effect_between**2 * p.alliance_sd_therapist**2 + p.outcome_sd_therapist**2
    n = len(clients) / p.n_therapists
    se = np.sqrt(2 / (p.n_therapists - 1)) * (expected + fit.scale / n)
    assert float(fit.cov_re.iloc[0, 0]) == pytest.approx(expected, abs=4 * se)


def test_dropout_hazard_on_alliance_is_recovered() -> None:
    p = SimulationParameters(n_clients=20000, n_therapists=200, n_sites=4)
    s = simulate_study(p, seed=24).sessions.sort_values(["client_id", "session"])
    last = s["session"] == s.groupby("client_id")["session"].transform("max")
    at_risk = s[~(last & (s["end_status"] == "planned"))].copy()
    at_risk["event"] = (last & (s["end_status"] == "dropout")).loc[at_risk.index].astype(float)
    at_risk = at_risk.dropna(subset=["srs"])
    exog = sm.add_constant(at_risk["srs"] - p.alliance_mean)
    fit = sm.Logit(at_risk["event"], exog).fit(disp=0)
    assert fit.params["const"] == pytest.approx(
        np.log(p.dropout_base / (1 - p.dropout_base)), abs=4 * fit.bse["const"]
    )
    assert fit.params["srs"] == pytest.approx(p.dropout_alliance, abs=4 * fit.bse["srs"])


def test_next_session_effect_of_state_alliance_is_recovered() -> None:
    p = SimulationParameters(
        **CLEAN, **UNBOUNDED_OUTCOME, n_clients=20000, n_therapists=200, state_effect=0.5
    )
    s = complete(simulate_study(p, seed=25).sessions)
    s = s.assign(ors_next=s.groupby("client_id")["ors"].shift(-1)).dropna(subset=["ors_next"])
    x, y = within(s, "srs"), within(s, "ors_next")
    slope = (x * y).sum() / (x * x).sum()
    residual = y - slope * x
    df = len(s) - s["client_id"].nunique() - 1
    se = np.sqrt((residual**2).sum() / df / (x * x).sum())
    assert slope == pytest.approx(p.state_effect, abs=4 * se)


def test_ruptures_occur_at_their_rate_and_drop_and_recover_as_set() -> None:
    p = SimulationParameters(**{**CLEAN, "rupture_rate": 0.05}, n_clients=20000, n_therapists=200)
    study = simulate_study(p, seed=26)
    s = pd.concat([study.sessions, study.latent], axis=1)
    s = complete(s)
    g = s.groupby("client_id")
    for lag in (1, 2):
        s[f"rupture_prev{lag}"] = g["rupture"].shift(lag, fill_value=False)
        s[f"repaired_prev{lag}"] = g["rupture_repaired"].shift(lag, fill_value=False)
    s["srs_prev"] = g["srs"].shift(1)
    s["srs_after1"] = g["srs"].shift(-1)
    s["srs_after2"] = g["srs"].shift(-2)
    s["rupture_next1"] = g["rupture"].shift(-1, fill_value=False)
    s["rupture_next2"] = g["rupture"].shift(-2, fill_value=False)

    eligible = (s["session"] >= 2) & ~s["repaired_prev1"]
    rate = s.loc[eligible, "rupture"].mean()
    assert rate == pytest.approx(p.rupture_rate, abs=4 * np.sqrt(0.05 * 0.95 / eligible.sum()))

    clean = s["rupture"] & ~s["rupture_prev1"] & ~s["repaired_prev2"]
    drop = (s["srs"] - s["srs_prev"])[clean]
    se = np.sqrt((2 * p.alliance_sd_session**2 + p.rupture_drop_sd**2) / len(drop))
    assert drop.mean() == pytest.approx(-p.rupture_drop, abs=4 * se)

    settled = clean & ~s["rupture_next1"] & ~s["rupture_next2"] & s["srs_after2"].notna()
    later = (s["srs_after2"] - s["srs_prev"])[settled]
    repaired = s.loc[settled, "rupture_repaired"]
    se_rep = np.sqrt(2 * p.alliance_sd_session**2 / repaired.sum())
    halfway = (s["srs_after1"] - s["srs_prev"])[settled][repaired]
    assert halfway.mean() == pytest.approx(
        -p.rupture_drop * (1 - 1 / p.repair_sessions), abs=4 * se_rep + 4 * se
    )
    assert later[repaired].mean() == pytest.approx(0.0, abs=4 * se_rep)
    unrepaired_expected = -p.unrepaired_persistence * p.rupture_drop
    se_unrep = np.sqrt(
        (2 * p.alliance_sd_session**2 + 0.25 * p.rupture_drop_sd**2) / (~repaired).sum()
    )
    assert later[~repaired].mean() == pytest.approx(unrepaired_expected, abs=4 * se_unrep)
    share = s.loc[s["rupture"], "rupture_repaired"].mean()
    n_ruptures = s["rupture"].sum()
    assert share == pytest.approx(p.repair_probability, abs=4 * np.sqrt(0.24 / n_ruptures))


def test_missing_ratings_occur_at_their_rates() -> None:
    p = SimulationParameters(
        n_clients=10000, n_therapists=100, missing_alliance=0.1, missing_outcome=0.05
    )
    s = simulate_study(p, seed=27).sessions
    n = len(s)
    assert s["srs"].isna().mean() == pytest.approx(0.1, abs=4 * np.sqrt(0.09 / n))
    assert s["ors"].isna().mean() == pytest.approx(0.05, abs=4 * np.sqrt(0.0475 / n))


def test_feedback_effect_on_gain_is_recovered() -> None:
    p = SimulationParameters(
        **CLEAN, **UNBOUNDED_OUTCOME, n_clients=20000, n_therapists=200, feedback="client"
    )
    s = complete(simulate_study(p, seed=28).sessions)
    gain = s.groupby("client_id").agg(
        intake=("ors", "first"), final=("ors", "last"), condition=("condition", "first")
    )
    gain["gain"] = gain["final"] - gain["intake"]
    groups = gain.groupby("condition")["gain"]
    difference = groups.mean()["feedback"] - groups.mean()["none"]
    se = np.sqrt((groups.var() / groups.size()).sum())
    assert difference == pytest.approx(p.feedback_effect, abs=4 * se)


@pytest.mark.parametrize("design", ["therapist", "date"])
def test_feedback_designs_assign_the_condition_as_documented(design: str) -> None:
    study = simulate_study(n_clients=400, n_therapists=10, seed=29, feedback=design)
    s = study.sessions
    if design == "therapist":
        assert s.groupby("therapist_id")["condition"].nunique().max() == 1
        assert s.groupby("therapist_id")["condition"].first().value_counts()["feedback"] == 5
    else:
        starts = s[s["session"] == 1].set_index("client_id")
        midpoint = (
            pd.Timestamp(study.parameters.start_date)
            + (pd.Timestamp(study.parameters.end_date) - pd.Timestamp(study.parameters.start_date))
            / 2
        )
        assert (
            starts.loc[starts["condition"] == "feedback", "session_date"]
            >= midpoint - pd.Timedelta(days=1)
        ).all()
        assert (starts.loc[starts["condition"] == "none", "session_date"] < midpoint).all()


# -- calibration of the defaults against the literature ------------------------------------------


def test_defaults_reproduce_the_literature_targets() -> None:
    """Partial r of session-3 SRS with final ORS given intake ≈ .28 (Flückiger et al., 2018);
    therapists' share of final-outcome variance ≈ 5% (Johns et al., 2019); a marked SRS
    ceiling; dropout in a fifth to a third of finished episodes."""
    s = simulate_study(n_clients=20000, n_therapists=400, n_sites=10, seed=30).sessions
    intake = s[s["session"] == 1].set_index("client_id")["ors"]
    early = s[s["session"] == 3].set_index("client_id")["srs"]
    later = s[(s["session"] > 3) & s["ors"].notna()].groupby("client_id").last()
    d = pd.concat(
        [
            intake.rename("intake"),
            early.rename("early"),
            later["ors"].rename("final"),
            later["therapist_id"],
        ],
        axis=1,
        join="inner",
    ).dropna()
    x = np.column_stack([np.ones(len(d)), d["intake"]])
    resid = {c: d[c] - x @ np.linalg.lstsq(x, d[c], rcond=None)[0] for c in ("early", "final")}
    partial_r = np.corrcoef(resid["early"], resid["final"])[0, 1]
    assert 0.25 <= partial_r <= 0.31
    fit = smf.mixedlm("final ~ intake", d, groups=d["therapist_id"]).fit(reml=True)
    icc = float(fit.cov_re.iloc[0, 0]) / (float(fit.cov_re.iloc[0, 0]) + fit.scale)
    assert 0.03 <= icc <= 0.07
    assert 0.15 <= (s["srs"] == 40).mean() <= 0.35
    ends = s.groupby("client_id")["end_status"].first()
    finished = ends[ends != "ongoing"]
    assert 0.15 <= (finished == "dropout").mean() <= 0.35
    assert 5 <= s.groupby("client_id").size().mean() <= 8


@pytest.mark.slow
def test_early_alliance_slope_is_unbiased_and_covered_across_seeds() -> None:
    """1,000 replicates of 2,000 clients: the mean estimate sits within Monte Carlo error of the
    truth and 95% confidence intervals cover it 93-97% of the time (MC SE of coverage 0.7%)."""
    p = SimulationParameters(
        **CLEAN,
        **UNBOUNDED_OUTCOME,
        n_clients=2000,
        n_therapists=50,
        measurement_sd=1.0,
        state_effect=0.0,
    )
    rounding = 1 + ROUNDING_VAR / (p.alliance_sd_client**2 + p.alliance_sd_session**2)
    truth = p.implied()["early_alliance_slope_within"] / rounding
    estimates, covered = [], []
    for seed in range(1000):
        s = complete(simulate_study(p, seed=seed).sessions)
        clients = s.groupby("client_id").agg(
            intake=("ors", "first"), final=("ors", "last"), therapist=("therapist_id", "first")
        )
        clients["early"] = s[s["session"] == 3].set_index("client_id")["srs"]
        x = np.column_stack([within(clients, c, "therapist") for c in ("intake", "early")])
        y = within(clients, "final", "therapist").to_numpy()
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        df = len(y) - clients["therapist"].nunique() - 2
        sigma2 = ((y - x @ beta) ** 2).sum() / df
        se = np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[1, 1])
        estimates.append(beta[1])
        covered.append(abs(beta[1] - truth) <= 1.96 * se)
    estimates = np.array(estimates)
    assert estimates.mean() == pytest.approx(truth, abs=4 * estimates.std() / np.sqrt(1000))
    assert 0.93 <= np.mean(covered) <= 0.97
