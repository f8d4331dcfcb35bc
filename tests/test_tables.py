"""APA-style tables: formatting rules of the APA Publication Manual (7th ed.) and the formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.pipeline import apa_tables_step
from allianceanalysis.tables import apa_table, format_estimate, format_p

ROWS = pd.DataFrame(
    {
        "model": "alliance_outcome",
        "term": [
            "Intercept",
            "alliance_early",
            "partial_r",
            "var_therapist",
            "var_residual",
            "loglik_reml",
        ],
        "estimate": [-7.8858, 0.54363, 0.28991, 0.76575, 34.7766, -4338.516],
        "std_error": [2.0087, 0.05287, np.nan, np.nan, np.nan, np.nan],
        "ci_low": [-11.8267, 0.43990, 0.24037, np.nan, np.nan, np.nan],
        "ci_high": [-3.9449, 0.64735, 0.33801, np.nan, np.nan, np.nan],
        "p_value": [9.13e-05, 0.0457, 1.3e-27, np.nan, np.nan, np.nan],
        "n_obs": [1354] * 6,
        "n_groups": [40] * 6,
        "converged": [True] * 6,
        "df": [1201.0, 1233.7, 1351.0, np.nan, np.nan, np.nan],
        "ci_method": ["satterthwaite_t", "satterthwaite_t", "fisher_z", "none", "none", "none"],
        "message": [""] * 6,
    }
)


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0457, ".046"), (0.5, ".500"), (0.0009, "< .001"), (1.0, "1.000"), (np.nan, "—")],
)
def test_p_values_have_three_decimals_and_no_leading_zero(p: float, text: str) -> None:
    assert format_p(p) == text


def test_bounded_statistics_lose_the_leading_zero_and_others_keep_it() -> None:
    assert format_estimate(0.28991, "partial_r") == ".29"
    assert format_estimate(-0.05, "cor_client_session") == "-.05"
    assert format_estimate(0.54363, "alliance_early") == "0.54"


def test_table_rows_carry_estimate_se_bracketed_ci_and_p() -> None:
    table = apa_table(ROWS, "alliance_outcome", "y ~ x + (1 | therapist_id)")
    assert table.header == ["Term", "Estimate", "SE", "95% CI", "p"]
    assert table.rows[1] == ["Early alliance", "0.54", "0.05", "[0.44, 0.65]", ".046"]
    assert table.rows[2] == ["Partial r (Fisher CI)", ".29", "—", "[.24, .34]", "< .001"]


def test_variance_components_form_their_own_block() -> None:
    rows = apa_table(ROWS, "alliance_outcome").rows
    assert rows[3][0] == "Random effects"
    assert [r[0] for r in rows[4:]] == ["Therapist variance", "Residual variance"]


def test_note_gives_n_model_inference_and_likelihood() -> None:
    note = apa_table(ROWS, "alliance_outcome", "y ~ x + (1 | therapist_id)").note
    assert note.startswith("n = 1,354 observations, 40 groups. Model: y ~ x + (1 | therapist_id).")
    assert "t with Satterthwaite degrees of freedom" in note and "Fisher's z" in note
    assert "REML log-likelihood = -4338.52." in note


def test_latex_escapes_and_uses_booktabs() -> None:
    latex = apa_table(ROWS, "alliance_outcome").latex()
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "95\\% CI" in latex and "$<$ .001" in latex


def test_html_is_escaped() -> None:
    html = apa_table(ROWS, "alliance_outcome").html()
    assert "&lt; .001" in html and "<td>[0.44, 0.65]</td>" in html


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rows of model 'growth'"):
        apa_table(ROWS, "growth")


def test_early_alliance_file_holds_one_table_per_k(tmp_path) -> None:
    rows = pd.concat([ROWS.assign(model=f"early_alliance_k{k}") for k in range(1, 6)])
    models = tmp_path / "early_alliance.csv"  # the model table, as the workflow writes it
    rows.to_csv(models, index=False)
    apa_tables_step([models], [tmp_path / "early_alliance.md"])
    text = (tmp_path / "early_alliance.md").read_text()
    assert [f"session {k}" in text for k in range(1, 6)] == [True] * 5
    assert "Early alliance at session 1 and final outcome**" in text
