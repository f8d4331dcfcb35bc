"""allianceanalysis: reproducible process-outcome analytics for psychotherapy data.

Modules, one per concept.

Data in
    :mod:`~allianceanalysis.instruments` (registry of rating scales),
    :mod:`~allianceanalysis.io` (read, map, validate session data; refuse identifiers),
    :mod:`~allianceanalysis.config` (workflow configuration and its schema),
    :mod:`~allianceanalysis.starter` (a starter configuration from a clinic's export),
    :mod:`~allianceanalysis.simulate` (studies whose truth is known),
    :mod:`~allianceanalysis.simulate_within` (worlds with known within-person truths),
    :mod:`~allianceanalysis.derive` (client, session and session-pair tables),
    :mod:`~allianceanalysis.shards` (a dataset split by therapist or site, validated in
    pieces, merged).
Analyses (each returns :mod:`~allianceanalysis.tidy` rows)
    :mod:`~allianceanalysis.models` (the model catalogue),
    :mod:`~allianceanalysis.covariates` and :mod:`~allianceanalysis.moderation` (covariates,
    moderators, conditional effects), :mod:`~allianceanalysis.custom_models` (your own models),
    :mod:`~allianceanalysis.formula` (the lme4 formula language), :mod:`~allianceanalysis.engine`,
    :mod:`~allianceanalysis.lmm` and
    :mod:`~allianceanalysis.glmm` (mixed-model fitting), :mod:`~allianceanalysis.logit`
    (logistic regression from sums over shards), :mod:`~allianceanalysis.sums`
    (sufficient statistics, exact and mergeable over shards),
    :mod:`~allianceanalysis.latent_disaggregation`, :mod:`~allianceanalysis.detrended` and
    :mod:`~allianceanalysis.riclpm` (within or between: latent means, detrended states, the
    RI-CLPM), :mod:`~allianceanalysis.sem` (structural equation ML on sufficient statistics),
    :mod:`~allianceanalysis.missing_data`, :mod:`~allianceanalysis.imputation` and
    :mod:`~allianceanalysis.pooling` (multilevel multiple imputation, Rubin's rules, the
    tipping point),
    :mod:`~allianceanalysis.pooled` (meta-analysis across sites and datasets),
    :mod:`~allianceanalysis.effects` (change indices and KPIs),
    :mod:`~allianceanalysis.clinical_significance` (reliable change, cut-offs, categories),
    :mod:`~allianceanalysis.ruptures`, :mod:`~allianceanalysis.dropout_risk`,
    :mod:`~allianceanalysis.expected_response`, :mod:`~allianceanalysis.feedback` (early
    warning), :mod:`~allianceanalysis.power` (power by simulation).
Results out
    :mod:`~allianceanalysis.figures`, :mod:`~allianceanalysis.tables` (APA tables),
    :mod:`~allianceanalysis.annual_report` (the annual report: tables, publisher, rendering),
    :mod:`~allianceanalysis.disclosure` (small-number suppression),
    :mod:`~allianceanalysis.pseudonyms` (therapist codes from a secret key),
    :mod:`~allianceanalysis.layout` (published and internal outputs),
    :mod:`~allianceanalysis.publish` (the publish bundle and its disclosure audit),
    :mod:`~allianceanalysis.provenance`.
Running
    :mod:`~allianceanalysis.pipeline` (the workflow's steps as functions),
    :mod:`~allianceanalysis.run` (the workflow behind ``allianceanalysis run``),
    :mod:`~allianceanalysis.cli` (the ``allianceanalysis`` command),
    :mod:`~allianceanalysis.errors` (errors a user can act on; ``NotEstimable``),
    :mod:`~allianceanalysis.distributions` (normal, t and chi-square tails and quantiles).
"""

import logging
from importlib.metadata import version

logging.getLogger("allianceanalysis").addHandler(logging.NullHandler())

__version__ = version("allianceanalysis")
__all__ = ["__version__"]
