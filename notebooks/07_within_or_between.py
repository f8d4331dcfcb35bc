# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Within or between?
#
# **Learning goals.** After this notebook you can
#
# 1. say why a therapist's *observed* mean alliance, built from a few clients, underestimates
#    the therapist-level effect, and how a *latent* mean (Lüdtke et al., 2008) repairs it;
# 2. explain how clients' own trends over sessions masquerade as session-to-session
#    (state) effects, and remove them by detrending (Wang & Maxwell, 2015);
# 3. read a random-intercept cross-lagged panel model (RI-CLPM; Hamaker, Kuiper & Grasman,
#    2015): stable differences between clients apart, does a better-than-usual alliance come
#    before a better-than-usual outcome, or the other way round?
# 4. tell what each answer means, and when the data cannot give one.
#
# Notebooks 04 and 05 split the alliance into a therapist part and a client part, and into a
# trait and a state, with observed means. Here the same questions are asked with the methods
# methodologists now expect (Falkenström, Solomonov & Rubel, 2022), in simulated worlds whose
# truth we know and on the demo service.
#
# Run the cells from top to bottom. Solutions are hidden: click the three dots (…) under a
# solution cell to reveal it.

# %%
# %matplotlib inline
import pandas as pd

from allianceanalysis import figures
from allianceanalysis.derive import client_table
from allianceanalysis.detrended import alliance_next_session_detrended
from allianceanalysis.io import load_sessions
from allianceanalysis.latent_disaggregation import alliance_disaggregated_latent
from allianceanalysis.riclpm import riclpm
from allianceanalysis.simulate_within import simulate_contextual, simulate_panel

world = simulate_contextual(n_therapists=200, clients_per_therapist=4, seed=7)
world.truth["effect_between"], world.truth["effect_within"]

# %% [markdown]
# ## Therapists: observed or latent mean?
#
# In this world each of 200 therapists sees 4 clients. A therapist whose clients rate the
# alliance one point higher has clients who end one ORS point better (`effect_between` =
# 1.0); within a caseload, a client with a one point better alliance ends 0.3 points better
# (`effect_within`). 20% of the alliance variance lies between therapists.
#
# `alliance_disaggregated_latent` fits the multilevel latent covariate model, a two-level
# structural equation model, beside the observed-mean model of notebook 04
# (`alliance_disaggregated_observed`):

# %%
latent = alliance_disaggregated_latent(client_table(world.sessions))
effects = ["alliance_therapist_mean", "alliance_client_dev", "between_minus_within"]
latent[latent["term"].isin(effects)][["model", "term", "estimate", "ci_low", "ci_high"]].round(2)

# %% [markdown]
# The observed mean of four clients is a noisy measure of the therapist's alliance: part of
# its spread is the clients' own. Its **reliability** is τ² / (τ² + σ²/n), the therapist
# variance over the variance of a mean of *n* clients:

# %%
latent.set_index("term").loc["reliability_therapist_mean", "estimate"].round(2)

# %% [markdown]
# With a reliability near .5, the observed-mean slope is pulled roughly halfway from the
# true between effect towards the within one (regression dilution). The latent model
# estimates the therapist's alliance with its uncertainty, so its between estimate is
# unbiased, at the price of a wider interval. Over many such worlds the observed-mean
# estimate averages 0.65 and the latent 1.00 (docs/models.md).
#
# On the demo service, with 20 therapists, the latent model may have no answer: the
# between-therapist alliance variance runs below zero and the likelihood has no maximum.
# R's lavaan fails on the same data. The rows then carry no estimate and say why:

# %%
sessions = load_sessions("../data/demo/sessions.csv")
demo_latent = alliance_disaggregated_latent(client_table(sessions))
demo_latent[["model", "term", "estimate", "converged"]].head(3)

# %%
demo_latent["message"].iloc[0]

# %% [markdown]
# ## Sessions: states or trends?
#
# Notebook 05 centred each client's alliance on their own mean to get the *state*: this
# session better or worse than usual for this client. But if a client's alliance and outcome
# both climb over treatment, a session late in treatment has both above the client's mean,
# and the centred alliance predicts the next outcome even when sessions do not influence
# each other. Here is such a world: clients differ in their own trends (correlated 0.6), and
# the true effect of this session's alliance on the next outcome is 0.25.

# %%
trends = simulate_panel(
    n_clients=2000,
    waves=8,
    seed=11,
    alliance_autoregression=0.0,
    outcome_autoregression=0.0,
    outcome_to_alliance=0.0,
    trend_sd_alliance=0.5,
    trend_sd_outcome=1.0,
    trend_correlation=0.6,
)
lagged = alliance_next_session_detrended(trends.sessions)
shown = lagged["term"].isin(["alliance_within", "alliance_detrended"])
lagged[shown][["model", "term", "estimate", "ci_low", "ci_high"]].round(3)

# %% [markdown]
# The person-mean centred estimate (`alliance_next_session_same_sample`) is far above 0.25;
# detrending each client's alliance and outcome by their own line over sessions brings it
# close (one world's estimate varies about the truth: over many such worlds the detrended
# estimate averages 0.255 and the centred one 0.405, docs/models.md).
# The third model keeps the lagged outcome uncentred: centring it on the client's mean
# biases its coefficient downwards by about −(1 + ρ)/(T − 1) (Nickell, 1981), shown in the
# row `nickell_bias_expected`, not assumed away.
#
# ## The RI-CLPM: which comes first?
#
# The RI-CLPM takes each client's first *T* sessions (six by default). It separates each
# client's stable level of alliance and of outcome (the random intercepts) from their
# session-to-session deviations, and regresses each deviation on both deviations of the
# session before: the autoregressions, and the two cross-lagged paths. In this world the true
# paths are alliance → next outcome 0.25, outcome → next alliance 0.10, and autoregressions
# 0.40 (alliance) and 0.30 (outcome).

# %%
panel = simulate_panel(n_clients=2000, waves=8, seed=12, dropout=0.05, missing=0.05)
paths = [
    "alliance_to_outcome",
    "outcome_to_alliance",
    "alliance_autoregression",
    "outcome_autoregression",
]
fit = riclpm(panel.sessions)
fit[(fit["model"] == "riclpm") & fit["term"].isin(paths)][
    ["term", "estimate", "ci_low", "ci_high"]
].round(3)

# %% [markdown]
# Each path's interval should hold its true value in about 95 of 100 such worlds (over six
# worlds of 2,000 clients the estimates average 0.242, 0.303 and 0.103 for the true 0.25, 0.30
# and 0.10). Clients who leave early, or miss a rating, contribute the sessions they have:
# the model is fitted by full-information maximum likelihood over the patterns of missing
# ratings. Its fit to the data is in the rows `chisq`, `cfi`, `rmsea` and `srmr`;
# `lrt_time_invariance` tests whether the paths may be taken as equal over sessions (against
# `riclpm_unconstrained`).

# %%
fit[
    (fit["model"] == "riclpm")
    & fit["term"].isin(["chisq", "cfi", "rmsea", "srmr", "lrt_time_invariance"])
][["term", "estimate", "df", "p_value"]].round(3)

# %% [markdown]
# ## All three on the demo service
#
# The figure `within_or_between` puts the three side by side (the workflow draws each of
# them for every dataset: `latent_disaggregation`, `detrended_effects`, `riclpm_paths`).
# Compare the next-session effect centred and detrended, and the RI-CLPM's alliance → next
# outcome path. A panel whose model the data cannot support says why.

# %%
demo = pd.concat([demo_latent, alliance_next_session_detrended(sessions), riclpm(sessions)])
figures.within_or_between(demo)

# %% [markdown]
# What each answer means: the latent between effect is about therapists (do clients of
# therapists who build better alliances do better?); the detrended and RI-CLPM within effects
# are about sessions within a client (after a better-than-usual alliance, is the next session's
# outcome better than usual?). A large between and a small within effect says the alliance
# marks *who* does well more than *when*. The RI-CLPM's paths are within-person associations
# over time, not proof of causation: a cause that moves both in step, or a lag other than one
# session, can produce or hide them.
#
# ---
# ## Exercises
#
# **Exercise 1.** Make the caseloads bigger: simulate the contextual world with 20 clients per
# therapist (`clients_per_therapist=20`, 40 therapists). How do the observed and latent
# between estimates compare now, and what is the reliability of the therapist mean?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
big = simulate_contextual(n_therapists=40, clients_per_therapist=20, seed=8)
table = alliance_disaggregated_latent(client_table(big.sessions))
print(
    table[table["term"].isin(["alliance_therapist_mean", "reliability_therapist_mean"])][
        ["model", "term", "estimate"]
    ].round(2)
)
# The reliability is above .8: the observed mean is nearly as good as the latent one, and the
# two between estimates are close. Latent centring matters most for small caseloads.

# %% [markdown]
# **Exercise 2.** In the trending world, fit the RI-CLPM to `trends.sessions`. Does it recover
# the alliance → next outcome path of 0.25? Why might it not, when the clients differ in their
# slopes rather than only in their levels?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
trend_fit = riclpm(trends.sessions)
print(
    trend_fit[(trend_fit["model"] == "riclpm") & trend_fit["term"].isin(paths)][
        ["term", "estimate", "ci_low", "ci_high"]
    ].round(3)
)
# The random intercepts absorb stable levels but not client-specific slopes: growing
# deviations look like autoregression and cross-lagged paths. Trends need a model with random
# slopes (Mulder & Hamaker, 2021, discuss such extensions) or detrending.

# %% [markdown]
# ## References
#
# - Falkenström, F., Solomonov, N., & Rubel, J. A. (2022). How to model and interpret
#   cross-lagged effects in psychotherapy mechanisms of change research. *Psychotherapy
#   Research, 32*(1), 1–16.
# - Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
#   cross-lagged panel model. *Psychological Methods, 20*(1), 102–116.
# - Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
#   (2008). The multilevel latent covariate model. *Psychological Methods, 13*(3), 203–229.
# - Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept
#   cross-lagged panel model. *Structural Equation Modeling, 28*(4), 638–648.
# - Nickell, S. (1981). Biases in dynamic models with fixed effects. *Econometrica, 49*(6),
#   1417–1426.
# - Wang, L. P., & Maxwell, S. E. (2015). On disaggregating between-person and within-person
#   effects with longitudinal data using multilevel models. *Psychological Methods, 20*(1),
#   63–83.
