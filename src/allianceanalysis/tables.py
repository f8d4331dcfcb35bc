"""Publishable tables, built from the tidy model tables (never by refitting).

:func:`apa_table` turns one model's tidy rows into an APA-style table (American Psychological
Association, 2020, *Publication Manual*, 7th ed., ch. 6-7), written as Markdown (for the report),
LaTeX (booktabs) and Word-friendly HTML (rendered with jinja2): estimates with 95% CIs in
brackets, two decimals, p-values with three decimals and no leading zero ("< .001" below),
statistics that cannot exceed 1 (correlations, R², ICC, p) without a leading zero, variance
components in their own block, and a note with n, the model in lme4 notation and the
inference method.

Examples
--------
>>> rows = pd.DataFrame({"model": "rm_corr", "term": ["r"], "estimate": [0.1456],
...     "std_error": [float("nan")], "ci_low": [0.1259], "ci_high": [0.1651], "p_value": [2e-46],
...     "n_obs": [11527], "n_groups": [1980], "converged": [True], "df": [9546.0],
...     "ci_method": ["fisher_z"], "message": [""]})
>>> print(apa_table(rows, "rm_corr").markdown().splitlines()[4])
| Repeated-measures r | .15 | — | [.13, .17] | < .001 |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

__all__ = [
    "MODEL_TITLES",
    "TERM_LABELS",
    "ApaTable",
    "apa_table",
    "format_estimate",
    "format_p",
    "read_model_table",
]

TERM_LABELS = {
    "Intercept": "Intercept",
    "outcome_intake": "Outcome at intake",
    "alliance_early": "Early alliance",
    "early_change": "Early change in outcome",
    "alliance_therapist_mean": "Therapist mean alliance (between)",
    "alliance_client_dev": "Client deviation from therapist mean (within)",
    "between_minus_within": "Between − within (contextual effect)",
    "outcome_within": "Outcome, within client",
    "alliance_within": "Alliance, within client (state)",
    "alliance_client_mean": "Alliance, client mean (trait)",
    "session": "Session",
    "partial_r": "Partial r (Fisher CI)",
    "partial_r_bootstrap": "Partial r (therapist-bootstrap CI)",
    "r2_alliance": "Partial r² (Fisher CI)",
    "r2_alliance_bootstrap": "Partial r² (therapist-bootstrap CI)",
    "r2_marginal": "Marginal R²",
    "r2_conditional": "Conditional R²",
    "icc": "ICC",
    "r": "Repeated-measures r",
    "odds_ratio_alliance_early": "Odds ratio per alliance point",
    "var_therapist": "Therapist variance",
    "var_client": "Client variance",
    "var_residual": "Residual variance",
    "var_client_session": "Session-slope variance",
    "cor_client_session": "Intercept-slope correlation",
    "loglik_reml": "REML log-likelihood",
    "loglik": "Log-likelihood",
    "reliability_therapist_mean": "Reliability of the observed therapist mean",
    "var_alliance_therapist": "Alliance variance, between therapists",
    "var_alliance_client": "Alliance variance, within therapists",
    "outcome_detrended": "Outcome, detrended within client",
    "alliance_detrended": "Alliance, detrended within client (state)",
    "outcome": "Outcome (uncentred lag)",
    "nickell_bias_expected": "Expected Nickell bias of the centred lag",
    "alliance_to_outcome": "Alliance → next outcome (within)",
    "outcome_to_alliance": "Outcome → next alliance (within)",
    "alliance_autoregression": "Alliance → next alliance (within)",
    "outcome_autoregression": "Outcome → next outcome (within)",
    "var_ri_alliance": "Random-intercept variance, alliance",
    "var_ri_outcome": "Random-intercept variance, outcome",
    "cov_ri": "Random-intercept covariance",
    "cor_ri": "Random-intercept correlation",
    "chisq": "χ² (model fit)",
    "cfi": "CFI",
    "rmsea": "RMSEA (90% CI)",
    "srmr": "SRMR",
    "lrt_time_invariance": "χ² difference: paths equal over sessions",
}
"""How terms read in published tables."""
MODEL_TITLES = {
    "alliance_outcome": "Early alliance and final outcome",
    "alliance_disaggregated": "Therapist and client parts of the early alliance",
    "therapist_icc": "Therapist effects on outcome",
    "therapist_effects": "Shrunken therapist effects",
    "alliance_icc": "Therapist differences in early alliance",
    "alliance_next_session": "Alliance and next-session outcome",
    "alliance_next_session_nested": "Alliance and next-session outcome, clients within therapists",
    "rm_corr": "Within-client association of alliance and outcome",
    "growth": "Outcome trajectories with state and trait alliance",
    "dropout": "Early alliance and unplanned ending",
    "alliance_disaggregated_latent": "Therapist and client parts of the early alliance, "
    "latent therapist means",
    "alliance_disaggregated_observed": "Therapist and client parts of the early alliance, "
    "observed therapist means (beside the latent model)",
    "alliance_next_session_detrended": "Alliance and next-session outcome, detrended states",
    "alliance_next_session_same_sample": "Alliance and next-session outcome, person-mean "
    "centred (the detrended model's pairs)",
    "alliance_next_session_lag_raw": "Alliance and next-session outcome, uncentred lagged outcome",
    "riclpm": "Random-intercept cross-lagged panel model, paths equal over sessions",
    "riclpm_unconstrained": "Random-intercept cross-lagged panel model, paths free",
}
"""Table titles; ``early_alliance_k<k>`` reads "Early alliance at session k ..."."""
_BOUNDED = {"partial_r", "partial_r_bootstrap", "r2_alliance", "r2_alliance_bootstrap",
            "r2_marginal", "r2_conditional", "icc", "r", "cor_client_session"}  # fmt: skip
_CI_METHODS = {
    "satterthwaite_t": "t with Satterthwaite degrees of freedom",
    "wald_z": "Wald z",
    "wald_z_cluster": "Wald z with therapist-clustered standard errors",
    "fisher_z": "Fisher's z",
    "cluster_bootstrap_percentile": "therapist-cluster bootstrap percentiles",
    "profile_likelihood": "profile likelihood",
    "conditional_variance": "conditional variances of the predicted effects",
}
_HTML = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<style>
table.apa { border-collapse: collapse; font-family: "Times New Roman", serif; }
table.apa caption { text-align: left; padding-bottom: 0.4em; }
table.apa thead th { border-top: 1px solid black; border-bottom: 1px solid black; }
table.apa tbody tr:last-child td { border-bottom: 1px solid black; }
table.apa th, table.apa td { padding: 0.15em 0.8em; text-align: right; }
table.apa th:first-child, table.apa td:first-child { text-align: left; }
p.apa-note { font-family: "Times New Roman", serif; max-width: 48em; }
</style>
<table class="apa">
<caption><strong>Table</strong><br><em>{{ title }}</em></caption>
<thead><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
<p class="apa-note"><em>Note.</em> {{ note }}</p>
"""
)


def read_model_table(path: str | Path) -> pd.DataFrame:
    """Read a tidy model table written by the workflow (``tables/<model>.csv``)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"message": "str"})
    table["message"] = table["message"].fillna("")
    return table.astype({"n_obs": "Int64", "n_groups": "Int64", "converged": "boolean"})


def _strip_zero(text: str) -> str:
    return text.replace("0.", ".", 1) if text.lstrip("-").startswith("0.") else text


def format_estimate(value: float, term: str = "", decimals: int = 2) -> str:
    """A number as APA style writes it (no leading zero for statistics bounded by 1).

    Examples
    --------
    >>> format_estimate(0.5436, "alliance_early"), format_estimate(0.2834, "partial_r")
    ('0.54', '.28')
    >>> format_estimate(-4338.5159, "loglik_reml")
    '-4338.52'
    """
    if value is None or pd.isna(value):
        return "—"
    text = f"{value:.{decimals}f}"
    return _strip_zero(text) if term in _BOUNDED else text


def format_p(value: float) -> str:
    """A p-value: three decimals without the leading zero, "< .001" below.

    Examples
    --------
    >>> format_p(0.0457), format_p(2e-9), format_p(float("nan"))
    ('.046', '< .001', '—')
    """
    if value is None or pd.isna(value):
        return "—"
    return "< .001" if value < 0.001 else _strip_zero(f"{value:.3f}")


@dataclass
class ApaTable:
    """An APA-style table: title, header, body rows (strings) and note."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str

    def markdown(self) -> str:
        """A pipe table with the title above and the note below."""
        lines = [f"| {' | '.join(self.header)} |", "|" + "---|" * len(self.header)]
        lines += [f"| {' | '.join(row)} |" for row in self.rows]
        return f"**{self.title}**\n\n" + "\n".join(lines) + f"\n\n*Note.* {self.note}\n"

    def latex(self) -> str:
        """A booktabs table (needs ``\\usepackage{booktabs}``)."""

        def tex(text: str) -> str:
            for raw, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"),
                                 ("_", r"\_"), ("#", r"\#"), ("<", r"$<$"), ("−", "--"),
                                 ("²", r"$^2$"), ("—", "---")):  # fmt: skip
                text = text.replace(raw, escaped)
            return text

        columns = "l" + "r" * (len(self.header) - 1)
        body = "\n".join(" & ".join(tex(c) for c in row) + r" \\" for row in self.rows)
        return (
            "\\begin{table}[htbp]\n\\centering\n"
            f"\\caption{{{tex(self.title)}}}\n"
            f"\\begin{{tabular}}{{{columns}}}\n\\toprule\n"
            + " & ".join(tex(h) for h in self.header) + " \\\\\n\\midrule\n"
            + body + "\n\\bottomrule\n\\end{tabular}\n"
            f"\\par\\smallskip\\textit{{Note.}} {tex(self.note)}\n\\end{{table}}\n"
        )  # fmt: skip

    def html(self) -> str:
        """Plain HTML that pastes into a word processor."""
        return _HTML.render(title=self.title, header=self.header, rows=self.rows, note=self.note)


def _title(model: str) -> str:
    if model.startswith("early_alliance_k"):
        k = model.removeprefix("early_alliance_k")
        beyond = "" if k == "1" else ", beyond early change"
        return f"Early alliance at session {k} and final outcome{beyond}"
    return MODEL_TITLES.get(model, model)


def apa_table(table: pd.DataFrame, model: str, formula: str = "") -> ApaTable:
    """The APA-style table of one model from its tidy rows.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy rows (any models; the rows of ``model`` are used).
    model : str
        Model name, e.g. ``"alliance_outcome"`` or ``"early_alliance_k3"``.
    formula : str
        The model in lme4 (or R) notation, for the note.

    Returns
    -------
    ApaTable
    """
    rows = table[table["model"] == model]
    if rows.empty:
        raise ValueError(f"the table has no rows of model {model!r}")
    fixed = rows[~rows["term"].str.startswith(("var_", "cor_")) & (rows["term"] != "loglik_reml")]
    random = rows[rows["term"].str.startswith(("var_", "cor_"))]
    header = ["Term", "Estimate", "SE", "95% CI", "p"]
    body = [
        [
            TERM_LABELS.get(r.term, r.term),
            format_estimate(r.estimate, r.term),
            format_estimate(r.std_error, r.term),
            "—" if pd.isna(r.ci_low) else
            f"[{format_estimate(r.ci_low, r.term)}, {format_estimate(r.ci_high, r.term)}]",
            format_p(r.p_value),
        ]
        for r in fixed.itertuples()
    ]  # fmt: skip
    if len(random):
        body.append(["Random effects", "", "", "", ""])
        body += [[TERM_LABELS.get(r.term, r.term), format_estimate(r.estimate, r.term), "—", "—",
                  "—"] for r in random.itertuples()]  # fmt: skip
    first = rows.iloc[0]
    parts = []
    if pd.notna(first["n_obs"]):
        groups = f", {int(first['n_groups']):,} groups" if pd.notna(first["n_groups"]) else ""
        parts.append(f"n = {int(first['n_obs']):,} observations{groups}.")
    if formula:
        parts.append(f"Model: {formula}.")
    methods = sorted({_CI_METHODS[m] for m in rows["ci_method"] if m in _CI_METHODS})
    if methods:
        parts.append("Confidence intervals and p-values: " + "; ".join(methods) + ".")
    loglik = rows[rows["term"] == "loglik_reml"]
    if len(loglik):
        parts.append(f"REML log-likelihood = {loglik['estimate'].iloc[0]:.2f}.")
    messages = sorted({m for m in rows["message"] if isinstance(m, str) and m})
    parts += [m[0].upper() + m[1:] + "." for m in messages]
    return ApaTable(_title(model), header, body, " ".join(parts))
