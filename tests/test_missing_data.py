"""Multiple imputation of the client-level models against R's mice, the tipping-point
analysis, and recovery of known truths under missing at random.

R reference: ``tests/reference/missing_data_reference.R`` (mice 3.15.0, ``2l.pan``, m = 100)
on ``data/missing_clients.csv`` (``make_missing_data.py``: the synthetic ``ors_srs.csv`` at
early session 3) and on mice's public ``popmis``. mice imputes by chained equations, we by the
joint model; both are proper imputations of the same two-level structure, so they agree up to
Monte Carlo error and the small difference between the two imputation models (Enders, Mistler
& Keller, 2016). Tolerances: pooled estimates within 4 Monte Carlo standard errors,
sqrt(b_ours / m + b_mice / m) from each side's between-imputation variance b (m = 100); pooled
standard errors within 4 Monte Carlo SDs of their ratio (:func:`se_ratio_monte_carlo_sd`,
about 10% at a fraction of missing information of .25), and within 5% when ours is averaged
over four runs (slow suite); fractions of missing information within :data:`FMI_MONTE_CARLO`
in one run each, and within 0.03 (the same first digit) averaged over four runs (slow
suite).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis import tidy
from allianceanalysis.engine import fit_lmm
from allianceanalysis.errors import NotEstimable
from allianceanalysis.imputation import impute
from allianceanalysis.missing_data import (
    _pool_frames,
    client_data,
    impute_clients,
    missingness,
    multiple_imputation,
    tipping_point,
    tipping_shifts,
)
from allianceanalysis.models import tidy_fit

from .helpers import ROOT

REFERENCE_DIR = ROOT / "tests" / "reference"
M = 100
FMI_MONTE_CARLO = 0.1
"""Tolerance of one run's fraction of missing information against mice's: 2.5 Monte Carlo SDs
of the difference of two independent estimates at m = 100 (an FMI f is estimated with SD about
f(1 - f) sqrt(2 / (m - 1)), .03 near f = .3, on each side)."""


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE_DIR / "missing_data.csv")


@pytest.fixture(scope="module")
def ours() -> pd.DataFrame:
    sessions = pd.read_csv(REFERENCE_DIR / "data" / "ors_srs.csv")
    table, _ = multiple_imputation(sessions, m=M, seed=7, early_sessions=())
    return table


def compared(ours: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    both = ours.merge(reference, on=["model", "term"], suffixes=("", "_mice"))
    assert len(both) == len(reference[reference["model"] != "popmis"])
    return both


def monte_carlo_se(row: pd.Series) -> float:
    """sqrt(b_ours / m + b_mice / m), b_ours from the pooled row's riv and SE."""
    b_ours = row["riv"] * row["std_error"] ** 2 / ((1 + 1 / M) * (1 + row["riv"]))
    return float(np.sqrt(b_ours / M + row["between"] / M))


def test_pooled_coefficients_equal_mice_within_monte_carlo_error(ours, reference) -> None:
    both = compared(ours, reference)
    both = both[both["term"] != "partial_r"]
    for _, row in both.iterrows():
        assert abs(row["estimate"] - row["estimate_mice"]) < 4 * monte_carlo_se(row), row["term"]


def se_ratio_monte_carlo_sd(both: pd.DataFrame) -> pd.Series:
    """Monte Carlo SD of SE_ours / SE_mice. A pooled variance T = W + (1 + 1/m) B moves only
    through B, estimated on m - 1 df (SD B sqrt(2 / (m - 1))), so SE = sqrt(T) has relative SD
    lambda / sqrt(2 (m - 1)), lambda = (1 + 1/m) B / T (about the FMI) on each side."""
    lam_ours = both["riv"] / (1 + both["riv"])
    return np.sqrt((lam_ours**2 + both["fmi_mice"] ** 2) / (2 * (M - 1)))


def test_pooled_standard_errors_equal_mice_within_monte_carlo_error(ours, reference) -> None:
    both = compared(ours, reference)
    both = both[both["term"] != "partial_r"]
    ratio = both["std_error"] / both["std_error_mice"]
    assert ((ratio - 1).abs() < 4 * se_ratio_monte_carlo_sd(both)).all(), ratio.round(3).tolist()


def test_pooled_partial_correlation_equals_mice(ours, reference) -> None:
    row = compared(ours, reference).query("term == 'partial_r'").iloc[0]
    # On Fisher's z scale mice's SE is the pooled SE; the MC SE of z from its between variance.
    z_ours, z_mice = np.arctanh(row["estimate"]), np.arctanh(row["estimate_mice"])
    assert abs(z_ours - z_mice) < 4 * np.sqrt(2 * row["between"] / M)


def test_fraction_of_missing_information_equals_mice_within_monte_carlo_error(
    ours, reference
) -> None:
    both = compared(ours, reference)
    np.testing.assert_allclose(both["fmi"], both["fmi_mice"], atol=FMI_MONTE_CARLO)


@pytest.fixture(scope="module")
def four_runs() -> pd.DataFrame:
    """Our FMI and SE averaged over four runs of m = 100 (400 imputations): our side's Monte
    Carlo error halved."""
    sessions = pd.read_csv(REFERENCE_DIR / "data" / "ors_srs.csv")
    runs = [multiple_imputation(sessions, m=M, seed=seed, early_sessions=())[0]
            for seed in (11, 12, 13, 14)]  # fmt: skip
    return pd.concat(runs).groupby(["model", "term"], as_index=False)[["fmi", "std_error"]].mean()


@pytest.mark.slow
def test_fraction_of_missing_information_equals_mice_to_the_first_digit(
    four_runs, reference
) -> None:
    both = four_runs.merge(reference, on=["model", "term"], suffixes=("", "_mice"))
    np.testing.assert_allclose(both["fmi"], both["fmi_mice"], atol=0.03)


@pytest.mark.slow
def test_pooled_standard_errors_equal_mice_within_five_percent_over_four_runs(
    four_runs, reference
) -> None:
    both = four_runs.merge(reference, on=["model", "term"], suffixes=("", "_mice"))
    both = both[both["term"] != "partial_r"]
    np.testing.assert_allclose(both["std_error"], both["std_error_mice"], rtol=0.05)


def test_public_popmis_pooled_model_equals_mice(reference) -> None:
    data = pd.read_csv(REFERENCE_DIR / "data" / "popmis.csv")
    groups = pd.factorize(data["school"])[0]
    x = np.column_stack([np.ones(len(data)), data["sex"], data["texp"]])
    imps = impute(data[["popular"]].to_numpy(float), x, groups, m=M, seed=3)
    frames = []
    for j in range(M):
        fit = fit_lmm("popular ~ sex + texp + (1 | school)",
                      data.assign(popular=imps.completed(j)[:, 0]))  # fmt: skip
        frames.append(tidy.frame(tidy_fit("popmis", fit)))
    pooled = _pool_frames("popmis", frames, "").assign(model="popmis")
    both = pooled.merge(reference, on=["model", "term"], suffixes=("", "_mice"))
    assert len(both) == 3
    for _, row in both.iterrows():
        assert abs(row["estimate"] - row["estimate_mice"]) < 4 * monte_carlo_se(row), row["term"]
    np.testing.assert_allclose(both["std_error"], both["std_error_mice"], rtol=0.05)
    np.testing.assert_allclose(both["fmi"], both["fmi_mice"], atol=0.06)


@pytest.fixture(scope="module")
def demo_sessions() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "demo" / "sessions.csv")


QUICK = {"burn_in": 30, "between": 5}


def test_every_client_level_model_has_mi_rows(demo_sessions) -> None:
    table, _ = multiple_imputation(demo_sessions, m=3, seed=1, **QUICK)
    assert set(table["model"]) == {
        "alliance_outcome_mi", "alliance_disaggregated_mi", "therapist_icc_mi", "dropout_mi",
        *(f"early_alliance_k{k}_mi" for k in range(1, 6)),
    }  # fmt: skip
    assert {"m", "fmi", "riv", "relative_efficiency"} <= set(table.columns)
    coefficient = table.query("model == 'alliance_outcome_mi' and term == 'alliance_early'")
    assert coefficient["n_obs"].item() == demo_sessions["client_id"].nunique()


def test_fewer_than_two_imputations_are_refused_in_plain_words(demo_sessions) -> None:
    with pytest.raises(ValueError, match=r"missing_data\.m must be at least 2"):
        multiple_imputation(demo_sessions, m=1)


def test_an_alliance_never_rated_at_the_early_session_gives_rows_saying_why(
    demo_sessions,
) -> None:
    sessions = demo_sessions.assign(srs=demo_sessions["srs"].where(demo_sessions["session"] != 3))
    table, imputed = multiple_imputation(sessions, m=2, seed=1, early_sessions=(), **QUICK)
    outcome = table[table["model"] == "alliance_outcome_mi"]
    assert outcome["term"].tolist() == ["not_fitted"]
    assert "alliance_early is observed in 0 cases" in outcome["message"].item()
    assert imputed is None


def test_data_without_an_alliance_measure_impute_the_therapist_model_only(demo_sessions) -> None:
    table, _ = multiple_imputation(demo_sessions, alliance=None, m=2, seed=1, **QUICK)
    assert set(table["model"]) == {"therapist_icc_mi"}
    assert "icc" in set(table["term"])


def test_a_single_therapist_imputes_without_the_therapist_level(demo_sessions) -> None:
    sessions = demo_sessions.assign(therapist_id="T1")
    table, _ = multiple_imputation(sessions, m=2, seed=1, early_sessions=(), **QUICK)
    assert "fewer than two therapists" in table.query("model == 'dropout_mi'")["message"].iloc[0]
    icc = table.query("model == 'therapist_icc_mi'")
    assert icc["term"].tolist() == ["not_fitted"]


def test_imputation_keeps_the_observed_client_table(demo_sessions) -> None:
    imputed = impute_clients(demo_sessions, m=2, seed=1, **QUICK)
    completed = imputed.completed(1)
    seen = imputed.base["alliance_early"].notna()
    np.testing.assert_array_equal(completed.loc[seen, "alliance_early"],
                                  imputed.base.loc[seen, "alliance_early"])  # fmt: skip
    core = [c for c in imputed.variables if c in imputed.base]
    assert completed[core].notna().all().all()


def test_client_data_gives_the_columns_asked_for_and_every_case(demo_sessions) -> None:
    [(_, whole, scores)] = client_data(demo_sessions, "ors", "srs", (3,))
    asked = {"client_id", "outcome_final", "not_a_column"}
    [(_, narrow, same)] = client_data(demo_sessions, "ors", "srs", (3,), columns=asked)
    assert narrow.columns.tolist() == ["client_id", "outcome_final"]
    pd.testing.assert_frame_equal(narrow, whole[["client_id", "outcome_final"]])
    assert scores.keys() == same.keys()


def test_completed_table_leaves_out_the_auxiliary_scores(demo_sessions) -> None:
    imputed = impute_clients(demo_sessions, m=2, seed=1, **QUICK)
    auxiliary = [c for c in imputed.variables if c not in imputed.base]
    assert auxiliary  # the sessions before k
    assert not set(auxiliary) & set(imputed.completed(0).columns)


def test_default_tipping_grid_moves_towards_a_worse_outcome() -> None:
    assert tipping_shifts("ors")[-1] == -10.0  # 25% of 0-40, higher is better
    assert tipping_shifts("phq9")[-1] == pytest.approx(6.75)  # 25% of 0-27, higher is worse


def test_tipping_point_finds_the_delta_that_reverses_the_association(demo_sessions) -> None:
    imputed = impute_clients(demo_sessions, m=5, seed=2, **QUICK)
    table = tipping_point(imputed, shifts=[0, 50, 100, 200, 400])
    grid = table[table["term"] == "alliance_early"]
    # Dropouts rated the alliance lower: raising their final outcomes weakens the association.
    assert grid["estimate"].is_monotonic_decreasing
    sign = table.query("term == 'tipping_delta_sign'")
    flipped = grid[np.sign(grid["estimate"]) != np.sign(grid["estimate"].iloc[0])]
    assert sign["estimate"].item() == flipped["delta"].iloc[0]


def test_tipping_point_says_when_the_grid_does_not_reach_it(demo_sessions) -> None:
    imputed = impute_clients(demo_sessions, m=3, seed=2, **QUICK)
    table = tipping_point(imputed, shifts=[0, -1])
    sign = table.query("term == 'tipping_delta_sign'")
    assert np.isnan(sign["estimate"].item())
    assert "not reached within the grid (to delta -1)" in sign["message"].item()


def test_missingness_accounts_for_every_case(demo_sessions) -> None:
    from allianceanalysis.derive import client_table

    clients = client_table(demo_sessions)
    table = missingness(clients)
    everyone = table[(table["band"] == "all") & (table["piece"] == "any")]
    assert everyone["cases"].item() == len(clients)
    assert everyone["missing"].item() == int((~clients["eligible"]).sum())
    bands = table[(table["band"] != "all") & (table["piece"] == "any")]
    assert bands["cases"].sum() == len(clients)


def test_an_unestimable_model_in_one_imputation_is_a_row_not_a_traceback(demo_sessions) -> None:
    def refuse(_table: pd.DataFrame) -> pd.DataFrame:
        raise NotEstimable("too few cases")

    from allianceanalysis.missing_data import _pooled_models

    imputed = impute_clients(demo_sessions, m=2, seed=1, **QUICK)
    row = _pooled_models({"x": refuse}, imputed)["x"]
    assert row["term"].tolist() == ["not_fitted"]


def test_published_missingness_hides_every_band_of_a_piece_with_a_small_one(
    demo_sessions,
) -> None:
    from allianceanalysis.derive import client_table
    from allianceanalysis.disclosure import DisclosurePolicy
    from allianceanalysis.missing_data import missingness_rows

    rows = missingness_rows(missingness(client_table(demo_sessions)), DisclosurePolicy(5))
    intake = rows[rows["term"].str.startswith("missing_outcome_intake_")]
    assert intake["message"].str.startswith("suppressed").all()  # 1 and 2 of 11 in two bands
    assert rows.query("term == 'missing_outcome_intake'")["estimate"].notna().all()


def test_missing_data_step_writes_every_table(demo_sessions, tmp_path) -> None:
    from allianceanalysis.pipeline import missing_data_step

    sessions = tmp_path / "sessions.parquet"
    demo_sessions.to_parquet(sessions)
    out = {name: tmp_path / f"{name}.csv" for name in
           ("imputed", "tipping", "pattern", "published_pattern")}  # fmt: skip
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3, "seed": 1,
               "engine": "lmm", "adjustment": None}  # fmt: skip
    missing_data_step(sessions, **out, options=options,
                      settings={"m": 2, "tipping_shifts": [0, -5]})  # fmt: skip
    tipping = pd.read_csv(out["tipping"])
    assert tipping["delta"].dropna().tolist() == [0.0, -5.0]
    assert set(pd.read_csv(out["imputed"])["model"]) >= {"alliance_outcome_mi", "dropout_mi"}


@pytest.mark.parametrize("alliance", ["srs", None])
def test_imputation_in_parts_writes_the_tables_of_one_process(
    demo_sessions, tmp_path, alliance
) -> None:
    """The workflow imputes each early session of a sharded dataset in its own job
    (impute_step) and puts the parts together (missing_data_merge_step): every table must be
    the one-process step's, byte for byte (each early session keeps its random stream)."""
    from allianceanalysis.missing_data import imputed_sessions
    from allianceanalysis.pipeline import impute_step, missing_data_merge_step, missing_data_step

    sessions = tmp_path / "sessions.parquet"
    demo_sessions.to_parquet(sessions)
    names = ("imputed", "tipping", "pattern", "published_pattern")
    options = {"outcome": "ors", "alliance": alliance, "early_session": 2, "seed": 1,
               "engine": "lmm", "adjustment": None}  # fmt: skip
    settings = {"m": 2, "tipping_shifts": [0, -5]}
    whole = {name: tmp_path / f"whole_{name}.csv" for name in names}
    missing_data_step(sessions, **whole, options=options, settings=settings)
    ks = imputed_sessions(2, alliance)
    parts = [tmp_path / f"k{k}.parquet" for k in ks]
    for k, part in zip(ks, parts, strict=True):
        impute_step(sessions, early=k, rows=part, pattern=tmp_path / f"k{k}_pattern.parquet",
                    options=options, settings=settings)  # fmt: skip
    merged = {name: tmp_path / f"merged_{name}.csv" for name in names}
    missing_data_merge_step(parts, tmp_path / "k2_pattern.parquet", **merged)
    for name in names:
        assert merged[name].read_bytes() == whole[name].read_bytes(), name


def _headline_tables(cc: float, mi: float, any_share: float | None) -> dict[str, pd.DataFrame]:
    def rows(model: str, estimate: float) -> pd.DataFrame:
        return pd.DataFrame({"model": [model], "term": ["alliance_early"],
                             "estimate": [estimate], "p_value": [0.001],
                             "ci_low": [estimate - 0.2], "ci_high": [estimate + 0.2]})  # fmt: skip

    tipping = pd.DataFrame({"term": ["tipping_delta_sign"], "estimate": [np.nan]})
    pattern = pd.DataFrame({"term": ["missing_any"], "estimate": [any_share]})
    return {"models": rows("alliance_outcome", cc), "imputed": rows("alliance_outcome_mi", mi),
            "tipping": tipping, "missingness": pattern}  # fmt: skip


def test_annual_report_paragraph_appears_when_imputation_moves_the_headline() -> None:
    from allianceanalysis.annual_report import missing_data_paragraph
    from allianceanalysis.instruments import get_instrument

    ors, srs = get_instrument("ors"), get_instrument("srs")
    text = missing_data_paragraph(_headline_tables(0.5, 0.3, 0.31), ors, srs, 3)
    assert "40% smaller" in text and "31% of clients who started" in text
    assert missing_data_paragraph(_headline_tables(0.5, 0.48, 0.31), ors, srs, 3) is None


def test_annual_report_paragraph_quotes_no_suppressed_share() -> None:
    from allianceanalysis.annual_report import missing_data_paragraph
    from allianceanalysis.instruments import get_instrument

    text = missing_data_paragraph(_headline_tables(0.5, 0.3, None), get_instrument("ors"),
                                  get_instrument("srs"), 3)  # fmt: skip
    assert "% of clients" not in text
    assert "Among complete cases" in text


@pytest.mark.parametrize("shards", [1, 2])
def test_missing_data_step_refuses_a_covariate_the_data_lack_in_plain_words(
    demo_sessions, tmp_path, shards
) -> None:
    """The step may run before derive (it reads the validated sessions, whole or in shards):
    it checks the covariates itself, naming the config key and the column, and writes
    nothing."""
    from allianceanalysis.covariates import Adjustment
    from allianceanalysis.errors import ConfigError
    from allianceanalysis.pipeline import missing_data_step

    data = demo_sessions.drop(columns=["age_band"])
    therapists = data["therapist_id"].unique()
    sessions = []
    for part, chosen in enumerate(np.array_split(therapists, shards)):
        sessions.append(tmp_path / f"sessions{part}.parquet")
        data[data["therapist_id"].isin(chosen)].to_parquet(sessions[-1])
    out = {name: tmp_path / f"{name}.csv" for name in
           ("imputed", "tipping", "pattern", "published_pattern")}  # fmt: skip
    adjustment = Adjustment.from_config({"covariates": ["age_band"], "datasets": {"d": {}}}, "d")
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3, "seed": 1,
               "engine": "lmm", "adjustment": adjustment.as_dict()}  # fmt: skip
    with pytest.raises(ConfigError, match="covariates: the data have no column 'age_band'"):
        missing_data_step(sessions, **out, options=options,
                          settings={"m": 2, "tipping_shifts": [0]})  # fmt: skip
    assert not any(path.exists() for path in out.values())
