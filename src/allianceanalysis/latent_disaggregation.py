"""Therapist and client parts of the alliance with the therapist's alliance as a latent mean.

The catalogue's ``alliance_disaggregated`` (Baldwin, Wampold & Imel, 2007) splits each case's
early alliance into the therapist's *observed* mean and the case's deviation from it. With few
cases per therapist the observed mean is an unreliable measure of the therapist's alliance
(its reliability is τ² / (τ² + σ² / n)), which attenuates the between-therapist effect and
biases the contextual effect (Lüdtke et al., 2008). The multilevel latent covariate model
treats the therapist-level alliance as a latent variable instead: every variable is split
into a between-therapist and a within-therapist part, and the outcome is regressed on the
alliance at each level, as a two-level SEM:

.. code-block:: text

    level: 1
      outcome_final ~ bw*alliance_early + g1*outcome_intake + …
    level: 2
      outcome_final ~ bb*alliance_early + g1*outcome_intake + …
    contextual := bb - bw

with ``outcome_intake`` and the covariates at both levels with one coefficient (as they enter
the observed-mean model once), the predictors' (co)variances free at both levels (lavaan's
``fixed.x = FALSE``: the latent mean's uncertainty is in the standard errors) and the means at
the therapist level; maximum likelihood (:mod:`allianceanalysis.sem`), equal to lavaan's
``sem(model, data, cluster = "therapist_id", fixed.x = FALSE)``.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model: A new, more reliable approach to group-level effects
in contextual studies. Psychological Methods, 13(3), 203-229.
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment
from .engine import DEFAULT_ENGINE
from .errors import NotEstimable
from .sem import Clusters, MLFit, Model, fit_ml

__all__ = ["alliance_disaggregated_latent", "latent_model"]

MODEL = "alliance_disaggregated_latent"
OBSERVED = "alliance_disaggregated_observed"
TERMS = ("alliance_therapist_mean", "alliance_client_dev", "between_minus_within")
"""The between, within and contextual effects: the observed-mean model's terms
(:func:`allianceanalysis.models.alliance_disaggregated`), which the latent model's rows share
so that the two read alike (a latent therapist mean in place of the observed one)."""


def latent_model(predictors: list[str], starts: dict[str, float] | None = None) -> Model:
    """The two-level model of ``outcome_final`` on ``alliance_early`` (coefficients ``bw``
    within, ``bb`` between) and the other ``predictors`` (one coefficient each, both levels)."""
    starts = starts or {}
    variables = ["outcome_final", "alliance_early", *predictors]
    model = Model([variables, variables])
    for level, slope in ((0, "bw"), (1, "bb")):
        model.add(
            level, "~", "outcome_final", "alliance_early", label=slope, start=starts.get(slope, 0.0)
        )
        for name in predictors:
            model.add(
                level,
                "~",
                "outcome_final",
                name,
                label=f"g_{name}",
                start=starts.get(f"g_{name}", 0.0),
            )
        model.add(
            level, "~~", "outcome_final", "outcome_final", start=starts.get(f"resid{level}", 1.0)
        )
        exogenous = variables[1:]
        for i, a in enumerate(exogenous):
            for b in exogenous[i:]:
                model.add(level, "~~", a, b, start=starts.get(f"{level}:{a}:{b}", 0.0))
    for v in variables:
        model.add(1, "~1", v, start=starts.get(f"mean:{v}", 0.0))
    return model


def _starts(clusters: Clusters, variables: list[str]) -> dict[str, float]:
    """Start values from the moment estimates: the pooled within covariance and the
    covariance of the therapist means less its within share (diagonal if not positive)."""
    within = clusters.within_scatter / (clusters.n - clusters.n_clusters)
    j = clusters.counts.sum()
    mean = clusters.mean_sums.sum(axis=0) / j
    between = clusters.mean_products.sum(axis=0) / j - np.outer(mean, mean)
    between = between - within * np.sum(clusters.counts / clusters.sizes) / j
    if np.any(np.linalg.eigvalsh(between) <= 0):
        between = np.diag(np.maximum(np.diag(between), 0.05 * np.diag(within)))
    starts: dict[str, float] = {f"mean:{v}": m for v, m in zip(variables, mean, strict=True)}
    for level, cov in ((0, within), (1, between)):
        beta = np.linalg.solve(cov[1:, 1:], cov[1:, 0])
        starts[("bw", "bb")[level]] = beta[0]
        if level == 0:
            starts.update({f"g_{v}": b for v, b in zip(variables[2:], beta[1:], strict=True)})
        starts[f"resid{level}"] = max(cov[0, 0] - cov[1:, 0] @ beta, 0.05 * cov[0, 0])
        for i, a in enumerate(variables[1:], start=1):
            for k, b in enumerate(variables[i:], start=i):
                starts[f"{level}:{a}:{b}"] = cov[i, k]
    return starts


def _reliability(fit: MLFit, clusters: Clusters) -> float:
    """The mean over therapists of the reliability of their observed alliance mean,
    τ² / (τ² + σ² / n) with the model's alliance variances (Lüdtke et al., 2008, eq. 4)."""
    est = fit.estimates
    tau2, sigma2 = est["alliance_early~~alliance_early@1"], est["alliance_early~~alliance_early"]
    reliability = tau2 / (tau2 + sigma2 / clusters.sizes) if tau2 > 0 else 0.0 * clusters.sizes
    return float(np.sum(clusters.counts * reliability) / clusters.counts.sum())


def _latent_rows(fit: MLFit, clusters: Clusters, controls: list[str]) -> list[dict]:
    common = {
        "n_obs": clusters.n,
        "n_groups": clusters.n_clusters,
        "converged": fit.converged,
        "message": "; ".join(fit.messages),
    }
    inferred = {
        "alliance_therapist_mean": {"bb": 1.0},
        "alliance_client_dev": {"bw": 1.0},
        "between_minus_within": {"bb": 1.0, "bw": -1.0},
        **{name: {f"g_{name}": 1.0} for name in controls},
    }
    # Where no maximum was found the parameters are where the optimiser stopped (often far
    # out where the likelihood is unbounded): no estimate is reported, the message says why.
    shown = 1.0 if fit.at_maximum else np.nan
    rows = [fit.wald_row(MODEL, term, weights, **common) for term, weights in inferred.items()]
    variances = {
        "var_therapist": "outcome_final~~outcome_final@1",
        "var_residual": "outcome_final~~outcome_final",
        "var_alliance_therapist": "alliance_early~~alliance_early@1",
        "var_alliance_client": "alliance_early~~alliance_early",
    }
    rows += [fit.wald_row(MODEL, term, {name: 1.0}, test=False, **common)
             for term, name in variances.items()]  # fmt: skip
    rows.append(
        tidy.row(MODEL, "reliability_therapist_mean", _reliability(fit, clusters) * shown, **common)
    )
    rows.append(tidy.row(MODEL, "loglik", fit.loglik * shown, **common))
    return rows


def _observed_rows(observed: pd.DataFrame) -> list[dict]:
    rows = observed[observed["term"].isin(TERMS)].copy()
    rows["model"] = OBSERVED
    return rows.to_dict("records")


def alliance_disaggregated_latent(
    clients: pd.DataFrame,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """The between-therapist, within-therapist and contextual alliance effects with latent
    therapist means, beside the observed-mean estimates.

    Parameters
    ----------
    clients : pandas.DataFrame
        The client table (:func:`allianceanalysis.derive.client_table`); eligible cases.
    engine : str
        The engine of the observed-mean model
        (:func:`allianceanalysis.models.alliance_disaggregated`).
    adjustment : Adjustment, optional
        Client-level covariates, entered at both levels with one coefficient each.

    Returns
    -------
    pandas.DataFrame
        Model ``alliance_disaggregated_latent``: ``alliance_therapist_mean`` (bb, the
        between effect of the therapist's latent mean alliance), ``alliance_client_dev`` (bw,
        within therapists), ``between_minus_within`` (bb − bw, the contextual effect),
        ``outcome_intake`` and each covariate column, with
        Wald intervals from the observed information (lavaan's with two levels);
        ``var_therapist`` and ``var_residual`` (the outcome's residual variances),
        ``var_alliance_therapist`` and ``var_alliance_client``,
        ``reliability_therapist_mean`` (the mean reliability of the observed therapist means
        the other model uses) and ``loglik``. Model ``alliance_disaggregated_observed``: the
        same three alliance effects from the observed-mean model.

    References
    ----------
    Lüdtke, O., et al. (2008). The multilevel latent covariate model. Psychological Methods,
    13(3), 203-229.

    Examples
    --------
    >>> from allianceanalysis.derive import client_table
    >>> from allianceanalysis.simulate import simulate_study
    >>> clients = client_table(simulate_study(n_clients=600, n_therapists=40, seed=5).sessions)
    >>> table = alliance_disaggregated_latent(clients)
    >>> sorted(set(table["model"]))
    ['alliance_disaggregated_latent', 'alliance_disaggregated_observed']
    """
    from .models import _controls, _eligible, alliance_disaggregated

    data = _eligible(clients)
    data, labels = _controls(data, adjustment, ["outcome_final", "alliance_early", "therapist_id"])
    data = data.dropna(subset=["outcome_final", "alliance_early", "therapist_id"])
    names = list(labels.values())  # the model's variables by R's names, the data's by ours
    columns = ["outcome_final", "alliance_early", *names]
    clusters = Clusters.from_array(
        data[["outcome_final", "alliance_early", *labels]].to_numpy(float),
        data["therapist_id"].to_numpy(),
    )
    spare = clusters.n - clusters.n_clusters
    if clusters.n_clusters < 2 or spare <= len(columns):
        raise NotEstimable(
            f"too few clients per therapist for the latent model: "
            f"{clusters.n} clients of {clusters.n_clusters} therapists leave "
            f"{spare} within-therapist degrees of freedom for {len(columns)} "
            "variables"
        )
    flat = [c for c, v in zip(names, np.diag(clusters.within_scatter)[2:], strict=True) if v <= 0]
    if flat:
        raise NotEstimable(
            "the latent model needs covariates that vary within therapists; "
            f"constant within every therapist: {', '.join(flat)}"
        )
    try:
        fit = fit_ml(latent_model(names, _starts(clusters, columns)), clusters)
    except np.linalg.LinAlgError as exc:
        raise NotEstimable(f"the latent model could not be estimated ({exc})") from exc
    observed = alliance_disaggregated(clients, engine=engine, adjustment=adjustment)
    return tidy.frame(_latent_rows(fit, clusters, names) + _observed_rows(observed))
