"""The model catalogue on small data: peers (pingouin, statsmodels), interface, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest

from allianceanalysis.covariates import Adjustment
from allianceanalysis.custom_models import custom_models
from allianceanalysis.derive import client_table, session_pairs, session_table
from allianceanalysis.engine import fit_lmm
from allianceanalysis.models import (
    CATALOGUE,
    TIDY_COLUMNS,
    _cluster_bootstrap_partial_r,
    _cross_products,
    _partial_r,
    alliance_disaggregated,
    alliance_outcome,
    dropout,
    early_alliance,
    partial_correlation,
    repeated_measures_correlation,
    run_model,
    therapist_effects,
    therapist_icc,
    therapist_shrinkage,
)
from allianceanalysis.moderation import MODELS as MODERATION_MODELS
from allianceanalysis.pseudonyms import therapist_codes
from allianceanalysis.simulate import simulate_study, with_items

from .helpers import ROOT

COMPONENTS = ("bond", "goal", "task", "overall")
"""The SRS's items read as the alliance's components (the registry's SRS entry)."""


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    """A simulated service with the SRS's items beside its totals (for the components)."""
    sessions = simulate_study(n_clients=600, n_therapists=20, seed=31).sessions
    items = with_items(sessions, 31)
    return sessions.join(items[[c for c in items if c.startswith("srs_")]])


@pytest.fixture(scope="module")
def clients(study: pd.DataFrame) -> pd.DataFrame:
    return client_table(study)


@pytest.fixture(autouse=True)
def _pingouin_unrounded():
    """pingouin rounds confidence intervals to 2 decimals by default."""
    saved = dict(pingouin.options)
    pingouin.options.clear()
    pingouin.options.update({"round": None, "round.column.CI95": None})
    yield
    pingouin.options.clear()
    pingouin.options.update(saved)


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # inside pingouin.rm_corr
def test_rm_corr_equals_pingouin(study: pd.DataFrame) -> None:
    table = session_table(study[study["client_id"] <= "C060"])
    r, dof, p_value, (low, high), _, _ = repeated_measures_correlation(
        table, "alliance", "outcome", "client_id"
    )
    both = table.dropna(subset=["alliance", "outcome"])
    peer = pingouin.rm_corr(both, x="alliance", y="outcome", subject="client_id")
    assert r == pytest.approx(peer["r"].item(), rel=1e-12)
    assert dof == peer["dof"].item()
    assert p_value == pytest.approx(peer["pval"].item(), rel=1e-9)
    # pingouin.rm_corr rounds its interval to 2 decimals (compute_esci's default)
    assert (low, high) == pytest.approx(tuple(peer["CI95"].item()), abs=0.005)


def test_partial_correlation_equals_pingouin(clients: pd.DataFrame) -> None:
    eligible = clients[clients["eligible"]]
    table = partial_correlation(eligible, "alliance_early", "outcome_final", "outcome_intake")
    row = table.set_index("term").loc["partial_r"]
    peer = pingouin.partial_corr(
        eligible, x="alliance_early", y="outcome_final", covar="outcome_intake"
    )
    assert row["estimate"] == pytest.approx(peer["r"].item(), rel=1e-10)
    assert row["p_value"] == pytest.approx(peer["p_val"].item(), rel=1e-8)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(peer["CI95"].item()), abs=1e-6)


def test_r2_alliance_is_the_square_of_partial_r(clients: pd.DataFrame) -> None:
    table = alliance_outcome(clients, bootstrap=100).set_index("term")
    assert table.loc["r2_alliance", "estimate"] == pytest.approx(
        table.loc["partial_r", "estimate"] ** 2
    )
    assert table.loc["r2_alliance", "ci_low"] == pytest.approx(
        table.loc["partial_r", "ci_low"] ** 2
    )


def test_cluster_bootstrap_equals_resampling_the_rows(clients: pd.DataFrame) -> None:
    data = clients[clients["eligible"]].reset_index(drop=True)
    fast = _cluster_bootstrap_partial_r(
        data, "alliance_early", "outcome_final", "outcome_intake", "therapist_id", 30, seed=5
    )
    codes, uniques = pd.factorize(data["therapist_id"])
    rng = np.random.default_rng(5)
    counts = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), size=30)
    slow = []
    for draw in counts:
        rows = np.concatenate(
            [np.flatnonzero(codes == c) for c in np.repeat(np.arange(len(uniques)), draw)]
        )
        resample = data.iloc[rows]
        slow.append(
            pingouin.partial_corr(
                resample, x="alliance_early", y="outcome_final", covar="outcome_intake"
            )["r"].item()
        )
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


def test_bootstrap_is_reproducible_from_its_seed(clients: pd.DataFrame) -> None:
    a = alliance_outcome(clients, bootstrap=200, seed=9)
    b = alliance_outcome(clients, bootstrap=200, seed=9)
    c = alliance_outcome(clients, bootstrap=200, seed=10)
    pd.testing.assert_frame_equal(a, b)
    boot = "partial_r_bootstrap"
    assert a.set_index("term").loc[boot, "ci_low"] != c.set_index("term").loc[boot, "ci_low"]


def test_partial_r_from_cross_products_matches_residual_correlation() -> None:
    rng = np.random.default_rng(1)
    x, y, z1, z2 = rng.normal(size=(4, 200))
    y = y + 0.5 * x + z1 - z2
    columns = np.column_stack([np.ones(200), x, y, z1, z2])
    controls = np.column_stack([np.ones(200), z1, z2])
    rx = x - controls @ np.linalg.lstsq(controls, x, rcond=None)[0]
    ry = y - controls @ np.linalg.lstsq(controls, y, rcond=None)[0]
    expected = np.corrcoef(rx, ry)[0, 1]
    assert _partial_r(_cross_products(columns)[0]) == pytest.approx(expected, rel=1e-12)


FORMULAS = {
    "therapist": (
        "clients",
        "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)",
    ),
    "client": (
        "pairs",
        "outcome_next ~ outcome_within + alliance_within + alliance_client_mean"
        " + session + (1 | client_id)",
    ),
    "nested": (
        "pairs",
        "outcome_next ~ outcome_within + alliance_within + alliance_client_mean"
        " + session + (1 | therapist_id/client_id)",
    ),
    "slope": (
        "table",
        "outcome ~ session + alliance_within + alliance_client_mean + (1 + session | client_id)",
    ),
}


@pytest.mark.parametrize("structure", sorted(FORMULAS))
def test_statsmodels_cross_check_agrees_with_the_default_engine(study, structure: str) -> None:
    """Estimates, variance components and likelihoods (statsmodels' standard errors of fixed
    effects come from its joint Hessian and differ from lme4's by design; the lme4 fixtures
    check ours)."""
    small = study[study["therapist_id"].isin(sorted(study["therapist_id"].unique())[:8])]
    data = {
        "clients": client_table(small).query("eligible"),
        "pairs": session_pairs(small),
        "table": session_table(small).dropna(subset=["outcome", "alliance"]),
    }
    kind, formula = FORMULAS[structure]
    fast = fit_lmm(formula, data[kind])
    reference = fit_lmm(formula, data[kind], engine="statsmodels")
    np.testing.assert_allclose(
        fast.coefficients["estimate"], reference.coefficients["estimate"], rtol=1e-4, atol=1e-8
    )
    for term, value in fast.variances.items():
        assert reference.variances[term] == pytest.approx(value, rel=1e-3, abs=1e-5), term
    assert reference.loglik == pytest.approx(fast.loglik, rel=1e-8)


@pytest.mark.parametrize("structure", sorted(FORMULAS))
def test_fast_core_agrees_with_the_mixedlm_backend(study, structure: str) -> None:
    """The default engine (the REML core of allianceanalysis.lmm) against mixedlm (Rust,
    lme4's algorithms) on 600 clients: estimates, standard errors, Satterthwaite degrees of
    freedom, variance components, the REML log-likelihood and, for a single random intercept,
    the predicted effects and their conditional variances."""
    data = {
        "clients": client_table(study).query("eligible"),
        "pairs": session_pairs(study),
        "table": session_table(study).dropna(subset=["outcome", "alliance"]),
    }
    kind, formula = FORMULAS[structure]
    core = fit_lmm(formula, data[kind], engine="lmm")
    rust = fit_lmm(formula, data[kind], engine="mixedlm")
    for column, rtol in (("estimate", 1e-5), ("std_error", 1e-5), ("df", 1e-3)):
        np.testing.assert_allclose(core.coefficients[column], rust.coefficients[column],
                                   rtol=rtol, atol=1e-9, err_msg=column)  # fmt: skip
    assert list(core.variances) == list(rust.variances)
    for term, value in rust.variances.items():
        assert core.variances[term] == pytest.approx(value, rel=1e-4, abs=1e-6), term
    assert core.loglik == pytest.approx(rust.loglik, rel=1e-10)
    assert core.n_groups == rust.n_groups and core.singular == rust.singular
    if rust.random_effects is not None:
        pd.testing.assert_frame_equal(core.random_effects, rust.random_effects, rtol=1e-4,
                                      atol=1e-6, check_dtype=False)  # fmt: skip


MODERATED = Adjustment.from_config({"moderators": ["arm"]})
"""A moderator of the tests' simulated service: its clients in two arms by their number."""
OWN = custom_models({"models": [{"name": "own", "formula": "outcome_final ~ alliance_early * arm"
                                                          " + (1 | therapist_id)"}]})  # fmt: skip
"""A model of the config's own."""


def _with_arm(sessions: pd.DataFrame) -> pd.DataFrame:
    odd = sessions["client_id"].str[-1].isin(list("13579"))
    return sessions.assign(arm=np.where(odd, "odd", "even"))


def test_every_table_has_the_tidy_columns_and_one_model_name_per_entry(study) -> None:
    for name in CATALOGUE:
        table = run_model(name, _with_arm(study), bootstrap=50, adjustment=MODERATED, custom=OWN)
        assert list(table.columns) == TIDY_COLUMNS, name
        expected = {
            "early_alliance": {f"early_alliance_k{k}" for k in range(1, 6)},
            "alliance_components": {f"{m}_{c}" for m in ("alliance_component",
                                    "early_alliance_component") for c in COMPONENTS},
            "moderation": {f"{m}_by_arm" for m in MODERATION_MODELS},
            "custom_models": {"own"},
            "alliance_disaggregated_latent": {name, "alliance_disaggregated_observed"},
            "alliance_next_session_detrended": {name, "alliance_next_session_same_sample",
                                                "alliance_next_session_lag_raw"},
            "riclpm": {name, "riclpm_unconstrained"},
        }.get(name, {name})  # fmt: skip
        assert set(table["model"]) == expected
        # An estimate is missing only where a fit found no maximum and says so (the latent
        # model here: lavaan 0.6.14 does not converge on these data either).
        missing = table[table["estimate"].isna()]
        assert not missing["converged"].any(), name
        assert missing["message"].str.contains("did not converge").all(), name


def test_mixed_model_terms_use_the_interface_names(clients: pd.DataFrame) -> None:
    terms = alliance_outcome(clients, bootstrap=50)["term"].tolist()
    assert terms[:6] == [
        "Intercept",
        "outcome_intake",
        "alliance_early",
        "var_therapist",
        "var_residual",
        "loglik_reml",
    ]


def test_early_change_is_left_out_at_session_one(study: pd.DataFrame) -> None:
    table = early_alliance(study)
    assert "early_change" not in set(table.loc[table["model"] == "early_alliance_k1", "term"])
    assert "early_change" in set(table.loc[table["model"] == "early_alliance_k3", "term"])


def test_between_minus_within_is_the_difference_of_the_two_slopes(clients) -> None:
    table = alliance_disaggregated(clients).set_index("term")["estimate"]
    difference = table["alliance_therapist_mean"] - table["alliance_client_dev"]
    assert table["between_minus_within"] == pytest.approx(difference, rel=1e-5)


def test_singular_fit_is_reported_in_plain_words() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame(
        {
            "therapist_id": np.repeat([f"T{i}" for i in range(10)], 20),
            "outcome_intake": rng.normal(20, 5, 200),
        }
    )
    data["outcome_final"] = data["outcome_intake"] + rng.normal(0, 5, 200)
    data["eligible"] = True
    table = therapist_icc(data)
    icc = table.set_index("term").loc["icc"]
    if table.set_index("term").loc["var_therapist", "estimate"] < 1e-8:
        assert "singular fit" in icc["message"]
        assert icc["ci_low"] == 0.0
    assert icc["ci_low"] <= icc["estimate"] <= icc["ci_high"]


def test_dropout_with_one_kind_of_ending_says_it_cannot_be_fitted(clients) -> None:
    table = dropout(clients.assign(dropout=0.0))
    assert not table["converged"].any()
    assert "only one kind of ending" in table["message"].iloc[0]


def test_dropout_odds_ratio_is_the_exponentiated_slope(clients) -> None:
    table = dropout(clients).set_index("term")
    assert table.loc["odds_ratio_alliance_early", "estimate"] == pytest.approx(
        np.exp(table.loc["alliance_early", "estimate"])
    )


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_model_on_too_little_data_says_so_instead_of_failing(study, name: str) -> None:
    tiny = _with_arm(study[study["client_id"].isin(["C001", "C002"])])
    table = run_model(name, tiny, bootstrap=20, adjustment=MODERATED, custom=OWN)
    assert list(table.columns) == TIDY_COLUMNS
    if table["term"].eq("not_fitted").any():
        assert not table["converged"].any()
        assert "too few" in table["message"].iloc[0]


def test_every_catalogue_model_is_documented_under_its_name() -> None:
    text = (ROOT / "docs" / "models.md").read_text()
    for name in CATALOGUE:
        assert f"`{name}`" in text and f"### `{name}`" in text.replace(" and `", "\n### `"), name


@pytest.fixture(scope="module")
def shrinkage_clients() -> pd.DataFrame:
    sessions = simulate_study(n_clients=1500, n_therapists=40, outcome_sd_therapist=2.0,
                              seed=44).sessions  # fmt: skip
    return client_table(sessions)


def test_shrunken_therapist_effects_are_the_raw_means_times_the_shrinkage_factor(
    shrinkage_clients,
) -> None:
    table = therapist_shrinkage(shrinkage_clients)
    np.testing.assert_allclose(table["shrunken"], table["shrinkage"] * table["raw"], atol=1e-9)
    assert table["shrinkage"].between(0, 1).all()
    small, large = table.nsmallest(5, "n_obs"), table.nlargest(5, "n_obs")
    assert small["shrinkage"].max() < large["shrinkage"].min()  # small caseloads shrink most


def test_shrunken_effects_are_the_therapist_effects_table(shrinkage_clients) -> None:
    codes = therapist_codes(shrinkage_clients["therapist_id"])
    table = therapist_shrinkage(shrinkage_clients, codes=codes).set_index("therapist")
    effects = therapist_effects(shrinkage_clients, codes=codes).set_index("term")
    np.testing.assert_allclose(table["shrunken"], effects.loc[table.index, "estimate"], atol=1e-12)
    assert (table["n_obs"] == effects.loc[table.index, "n_obs"]).all()
