"""Figures are drawn from the tidy and derived tables, labelled, and saved reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allianceanalysis import dropout_risk, expected_response, feedback, figures, ruptures
from allianceanalysis.derive import client_table, rupture_windows, session_table
from allianceanalysis.instruments import get_instrument
from allianceanalysis.models import CATALOGUE, run_model, therapist_shrinkage
from allianceanalysis.simulate import simulate_study

ORS, SRS = get_instrument("ors"), get_instrument("srs")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    sessions = simulate_study(n_clients=400, n_therapists=16, seed=61).sessions
    models = pd.concat([run_model(m, sessions, bootstrap=50) for m in CATALOGUE])
    return {"table": session_table(sessions), "clients": client_table(sessions), "models": models}


def test_trajectories_have_one_panel_per_site_with_n(tables) -> None:
    figure = figures.outcome_trajectories(tables["table"], ORS, by="site_id")
    assert len(figure.axes) == tables["table"]["site_id"].nunique()
    assert all(" clients" in axis.get_title() for axis in figure.axes)
    assert figure.axes[0].get_ylabel() == "ORS (0-40, higher is better)"


def test_session_means_are_drawn_only_where_enough_clients_contribute(tables) -> None:
    table = tables["table"]
    counts = table.dropna(subset=["outcome"]).groupby("session").size()
    mean_line = figures.outcome_trajectories(table, ORS).axes[0].lines[-1]
    assert counts.loc[list(mean_line.get_xdata())].min() >= figures.MIN_CLIENTS_FOR_MEAN


def test_alliance_figure_shows_the_ceiling_and_the_cut_off(tables) -> None:
    figure = figures.alliance_over_sessions(tables["table"], tables["clients"], SRS, 3)
    labels = [
        t.get_text()
        for axis in figure.axes
        if axis.get_legend()
        for t in axis.get_legend().get_texts()
    ]
    assert "% at 40" in labels
    assert any(label.startswith("cut-off 36") for label in labels)


def test_scatter_title_quotes_the_partial_r_of_the_model_table(tables) -> None:
    row = tables["models"].query("model == 'alliance_outcome' and term == 'partial_r'").iloc[0]
    title = (
        figures.alliance_outcome_scatter(tables["clients"], tables["models"], ORS, SRS)
        .axes[0]
        .get_title()
    )
    assert title.startswith(f"Partial r = {figures.apa_r(row['estimate'])}, 95% CI")


def test_early_alliance_figure_has_one_point_per_k(tables) -> None:
    figure = figures.early_alliance_by_k(tables["models"], alliance="srs", outcome="ors")
    line = figure.axes[0].containers[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert "ORS points per SRS point" in figure.axes[0].get_ylabel()


def test_disaggregation_shows_between_within_and_difference(tables) -> None:
    axis = figures.alliance_disaggregation(tables["models"]).axes[0]
    ticks = [t.get_text() for t in axis.get_yticklabels()]
    assert ticks == [
        "Between therapists\n(therapist mean)",
        "Within therapists\n(client deviation)",
        "Difference\n(between - within)",
    ]


def test_within_or_between_draws_each_method_with_its_interval(tables) -> None:
    figure = figures.within_or_between(tables["models"])
    sessions_axis, riclpm_axis = figure.axes[1], figure.axes[2]
    assert [t.get_text() for t in sessions_axis.get_yticklabels()] == [
        "Person-mean centred", "Detrended", "Uncentred lagged outcome"]  # fmt: skip
    rows = tables["models"].set_index(["model", "term"])
    drawn = [line.get_xdata()[0] for line in riclpm_axis.lines if line.get_marker() == "o"]
    expected = [rows.loc[("riclpm", t), "estimate"] for t in
                ("alliance_to_outcome", "outcome_to_alliance", "alliance_autoregression",
                 "outcome_autoregression")]  # fmt: skip
    assert drawn == pytest.approx(expected)


def test_within_or_between_names_a_model_the_data_cannot_support() -> None:
    rows = pd.DataFrame({"model": ["riclpm"], "term": ["not_fitted"], "estimate": [np.nan],
                         "message": ["not computed: too few waves"]})  # fmt: skip
    axis = figures.within_or_between(rows).axes[2]
    assert [t.get_text() for t in axis.texts] == ["Not computed: too few waves"]


def test_caterpillar_shows_pseudonymous_codes_only(tables) -> None:
    axis = figures.therapist_caterpillar(tables["models"]).axes[0]
    ticks = {t.get_text() for t in axis.get_yticklabels()}
    assert all(code.startswith("TH") for code in ticks)
    assert not ticks & set(tables["clients"]["therapist_id"])


def test_caterpillar_of_many_therapists_ranks_them_unlabelled_at_a_fixed_size(
    tables, monkeypatch
) -> None:
    monkeypatch.setattr(figures, "MAX_LABELLED_THERAPISTS", 5)
    figure = figures.therapist_caterpillar(tables["models"])
    assert figure.axes[0].get_yticklabels() == []
    assert figure.axes[0].get_ylabel() == "Therapists, ranked"
    assert figure.get_size_inches()[1] == 6.0


def test_scatter_of_many_clients_bins_them_into_hexagons(tables, monkeypatch) -> None:
    monkeypatch.setattr(figures, "MAX_SCATTER_POINTS", 50)
    figure = figures.alliance_outcome_scatter(tables["clients"], tables["models"], ORS, SRS)
    shades = figure.axes[0].collections[0]
    assert shades.get_array().sum() == tables["clients"]["eligible"].sum()
    assert figure.axes[1].get_ylabel() == "Clients (log scale)"


def test_dropout_calibration_plots_each_tenth_and_quotes_the_cross_validated_accuracy() -> None:
    sessions = simulate_study(n_clients=1500, n_therapists=30, seed=8).sessions
    periods = dropout_risk.person_periods(sessions)
    held_out = dropout_risk.cross_validated_risk(periods, folds=5, seed=1)
    points = dropout_risk.calibration_table(held_out)
    warning = dropout_risk.risk_table(periods, held_out, folds=5)
    axis = figures.dropout_calibration(points, warning).axes[0]
    assert len(axis.containers[0].lines[0].get_xdata()) == len(points) == 10
    auc = warning.set_index("term").loc["auc_cv", "estimate"]
    assert axis.get_title().startswith(f"AUC {auc:.2f}, Brier")


def test_dropout_calibration_says_when_nothing_was_computed() -> None:
    empty = pd.DataFrame(columns=["band", "predicted", "observed", "ci_low", "ci_high"])
    figure = figures.dropout_calibration(empty, pd.DataFrame(columns=["model", "term", "estimate"]))
    assert figure.axes[0].texts[0].get_text().startswith("Not computed")


def test_saved_figures_are_identical_for_identical_tables(tables, tmp_path: Path) -> None:
    first = [tmp_path / "a.png", tmp_path / "a.svg"]
    second = [tmp_path / "b.png", tmp_path / "b.svg"]
    figures.save_figure(figures.therapist_caterpillar(tables["models"]), first)
    figures.save_figure(figures.therapist_caterpillar(tables["models"]), second)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix


def test_rupture_profile_draws_one_average_line_per_kind() -> None:
    study = simulate_study(n_clients=600, seed=8)
    kind = study.latent["rupture_repaired"].map({True: "repaired", False: "unrepaired"})
    windows = rupture_windows(study.sessions, study.latent["rupture"], kind=kind)
    figure = figures.rupture_profile(windows, SRS)
    labels = [line.get_label() for line in figure.axes[1].lines if "n = " in line.get_label()]
    assert [label.split(" (")[0] for label in labels] == ["repaired", "unrepaired"]


def test_power_plot_marks_the_target_and_each_number_of_clients() -> None:
    curve = pd.DataFrame({"n_clients": [200, 200, 400, 400], "n_therapists": [10, 20, 10, 20],
                          "term": "alliance_therapist_mean", "alpha": 0.05,
                          "power": [0.3, 0.5, 0.4, 0.7], "ci_low": [0.2, 0.4, 0.3, 0.6],
                          "ci_high": [0.4, 0.6, 0.5, 0.8]})  # fmt: skip
    figure = figures.power_plot(curve)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["power 0.8", "200 clients", "400 clients"]
    assert "Therapist mean alliance (between)" in figure.axes[0].get_title()


def test_shrinkage_plot_joins_each_therapists_raw_and_shrunken_effect(tables) -> None:
    from_table = therapist_shrinkage(tables["clients"])
    figure = figures.shrinkage_plot(from_table)
    assert len(figure.axes[0].collections[0].get_segments()) == len(from_table)


def test_rupture_profile_of_detected_ruptures_draws_repaired_and_unrepaired() -> None:
    sessions = simulate_study(n_clients=600, seed=8).sessions
    sequences = ruptures.rupture_sequences(ruptures.detect_ruptures(sessions))
    assert not set(sequences.columns) & {"client_id", "therapist_id"}  # no case keys
    figure = figures.rupture_profile(sequences, SRS)
    labels = [line.get_label() for line in figure.axes[1].lines if "n = " in line.get_label()]
    assert [label.split(" (")[0] for label in labels] == ["repaired", "unrepaired"]


def test_rupture_profile_says_when_no_rupture_was_found() -> None:
    empty = pd.DataFrame(columns=["rupture", "offset", "alliance", "change", "kind"])
    assert figures.rupture_profile(empty, SRS).axes[0].texts[0].get_text().startswith("Not")


def test_expected_response_draws_a_curve_and_a_bound_per_intake_quartile() -> None:
    sessions = simulate_study(n_clients=800, n_therapists=20, seed=8).sessions
    model = expected_response.fit_expected_response(sessions)
    curves = expected_response.expected_curves(sessions, model)
    flags = expected_response.not_on_track(sessions, model)
    warning = pd.concat([model.table, expected_response.signal_accuracy(flags)])
    axis = figures.expected_response(curves, warning, ORS).axes[0]
    curves_drawn = [line for line in axis.lines if len(line.get_xdata()) > 1]
    solid = [line for line in curves_drawn if line.get_linestyle() == "-"]
    dashed = [line for line in curves_drawn if line.get_linestyle() == "--"]
    intakes = [line for line in axis.lines if list(line.get_xdata()) == [1]]
    assert len(solid) == len(dashed) == len(intakes) == 3
    assert list(solid[0].get_xdata()) == list(range(2, 13))
    assert axis.get_title().startswith("Signal against reliable deterioration: sensitivity")


def test_expected_response_title_says_why_a_share_is_undefined_rather_than_nan() -> None:
    """Data without a reliable deterioration (the public claus_2020 study's) leave the
    signal's sensitivity undefined: the title says so in words."""
    sessions = simulate_study(n_clients=300, n_therapists=10, seed=8).sessions
    model = expected_response.fit_expected_response(sessions)
    curves = expected_response.expected_curves(sessions, model)
    signal = pd.DataFrame({"model": "not_on_track_signal",
                           "term": ["sensitivity", "specificity", "ppv"],
                           "estimate": [np.nan, 0.9, np.nan]})  # fmt: skip
    title = figures.expected_response(curves, signal, ORS).axes[0].get_title()
    assert "nan" not in title
    assert "sensitivity undefined (no client deteriorated reliably)" in title
    assert "specificity 0.90" in title and "PPV undefined (no client was flagged)" in title


def test_expected_curves_start_at_the_intake_quartiles_below_their_expectation() -> None:
    sessions = simulate_study(n_clients=800, n_therapists=20, seed=8).sessions
    model = expected_response.fit_expected_response(sessions)
    curves = expected_response.expected_curves(sessions, model)
    intake = sessions.loc[sessions["session"] == 1, "ors"]
    np.testing.assert_allclose(curves.groupby("intake_quartile")["intake"].first(),
                               intake.quantile([0.25, 0.5, 0.75]))  # fmt: skip
    assert (curves["bound"] < curves["expected"]).all()  # ORS: higher is better


def test_feedback_figure_has_one_panel_per_model_under_the_design_statement() -> None:
    sessions = simulate_study(n_clients=900, n_therapists=20, feedback="date", seed=8).sessions
    figure = figures.feedback_effects(feedback.feedback_effects(sessions))
    assert len(figure.axes) == 3
    assert "before/after comparison" in figure.get_suptitle()


def test_feedback_figure_without_conditions_says_why() -> None:
    sessions = simulate_study(n_clients=300, n_therapists=10, seed=8).sessions
    figure = figures.feedback_effects(feedback.feedback_effects(sessions))
    assert "Only one condition" in figure.axes[0].texts[0].get_text()


def test_the_palette_is_seaborns_colorblind_palette() -> None:
    import seaborn as sns

    assert sns.color_palette("colorblind").as_hex() == figures.PALETTE


def test_client_count_counts_a_client_in_two_shards_once(tables, tmp_path: Path) -> None:
    """The alliance figure's n: the clients with a rating up to the last session shown, as
    the sorted IDs give it, over shards that share a client."""
    from allianceanalysis.shards import ShardedTable

    table = tables["table"]
    shared = table["client_id"].iloc[0]
    first = table[table["client_id"] <= shared]
    second = table[table["client_id"] >= shared]  # the shared client's rows in both
    paths = []
    for k, part in enumerate((first, second)):
        paths.append(tmp_path / f"{k}.parquet")
        part.to_parquet(paths[-1])
    sharded = ShardedTable.of(paths)
    expected = len(figures._clients(table, "alliance", None)[None])
    assert figures._client_count(sharded, "alliance") == expected
    assert figures._client_count(table, "alliance") == expected


def test_figure_data_forgets_the_tables_no_figure_still_reads(tables) -> None:
    data = figures.FigureData({"models": "unused.csv"}, "ors", "srs")
    data._tables.update(clients=tables["clients"], models=tables["models"])
    data.forget({"models", "sessions"})
    assert set(data._tables) == {"models"}


def test_figure_data_reads_only_the_client_columns_figures_use(tables, tmp_path: Path) -> None:
    tables["clients"].to_parquet(tmp_path / "clients.parquet")
    data = figures.FigureData({"clients": tmp_path / "clients.parquet"}, "ors", "srs")
    assert tuple(data["clients"].columns) == figures.FIGURE_COLUMNS["clients"]
