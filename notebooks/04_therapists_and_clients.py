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
# # 04 · Therapists and clients
#
# **Learning goals.** After this notebook you can
#
# 1. estimate how much of the variation in outcome, and in the alliance, lies between
#    therapists (the intraclass correlation, ICC);
# 2. split the alliance into a therapist part and a client part (Baldwin, Wampold & Imel,
#    2007) and say which predicts outcome;
# 3. explain *shrinkage*: why a multilevel model pulls therapists with few clients towards
#    the average;
# 4. show, with data where every therapist is equally good, why league tables of raw means
#    mislead.
#
# Run the cells from top to bottom. Solutions are hidden: click the three dots (…) under a
# solution cell to reveal it.

# %%
# %matplotlib inline
from allianceanalysis import figures
from allianceanalysis.derive import client_table
from allianceanalysis.effects import client_outcomes, funnel
from allianceanalysis.io import load_sessions
from allianceanalysis.models import (
    alliance_disaggregated,
    alliance_icc,
    therapist_effects,
    therapist_icc,
    therapist_shrinkage,
)
from allianceanalysis.simulate import simulate_study

sessions = load_sessions("../data/demo/sessions.csv")
clients = client_table(sessions)
small = therapist_icc(clients).set_index("term")
small.loc[["var_therapist", "var_residual", "icc"], ["estimate", "ci_low", "ci_high"]].round(3)

# %% [markdown]
# ## How much lies between therapists?
#
# `therapist_icc` fits `outcome_final ~ outcome_intake + (1 | therapist_id)` and reports the
# **ICC**: the therapist variance as a share of the total (after intake). Reviews put it at
# about 5% of outcome variance: 8.2% in trials and 2.4% in counselling centres (Johns et al.,
# 2019). The interval is a profile-likelihood interval, like lme4's.
#
# The demo service has 20 therapists and about 200 eligible clients, and its estimate is
# close to zero with an interval reaching about 8%. That is the usual situation of a single
# service: therapist effects of a few per cent need many therapists to be seen. A larger
# simulated service, built with therapist differences of the size the reviews report, shows
# them:

# %%
large = client_table(simulate_study(n_clients=4000, n_therapists=80, seed=21).sessions)
for fit in (therapist_icc(large), alliance_icc(large)):
    row = fit.set_index("term").loc["icc"]
    print(f"{row['model']}: ICC = {row['estimate']:.3f} [{row['ci_low']:.3f}, "
          f"{row['ci_high']:.3f}]")  # fmt: skip

# %% [markdown]
# Therapists differ more in the alliances they build than in their outcomes (`alliance_icc`
# is larger): Baldwin et al. (2007) and Del Re et al. (2012) found that it is the *therapist's*
# contribution to the alliance that predicts outcome.
#
# ## The Baldwin disaggregation
#
# A client's early alliance is split into their therapist's mean (over the therapist's
# clients) and the client's deviation from it:
#
# `outcome_final ~ outcome_intake + alliance_therapist_mean + alliance_client_dev`
# `+ (1 | therapist_id)`
#
# The therapist-mean slope is the **between-therapist** effect (do therapists with better
# alliances get better outcomes?), the deviation slope the **within-therapist** effect (does
# a client with a better alliance than their therapist's other clients do better?), and
# `between_minus_within` the contextual effect.

# %%
baldwin = alliance_disaggregated(large)
baldwin.set_index("term").loc[
    ["alliance_therapist_mean", "alliance_client_dev", "between_minus_within"],
    ["estimate", "ci_low", "ci_high", "p_value"],
].round(3)

# %%
figures.alliance_disaggregation(baldwin)

# %% [markdown]
# A therapist's mean over a handful of clients is itself a noisy measure, which biases its
# slope towards the within slope (Lüdtke et al., 2008). With small caseloads, treat the
# between estimate as a lower bound, and compare it with latent-mean centring where you can.
#
# ## Shrinkage
#
# A therapist with three clients who all did well has a high *raw* mean, but three clients
# say little. A multilevel model predicts each therapist's effect as a compromise between
# their own clients and the service average, weighted by how much their own clients can say:
# the **shrinkage factor** τ² / (τ² + σ² / n) grows towards 1 with the number of clients n.
# `therapist_shrinkage` puts the raw and the shrunken effect side by side.

# %%
shrinkage = therapist_shrinkage(large)
figures.shrinkage_plot(shrinkage)

# %%
figures.therapist_caterpillar(therapist_effects(large))

# %% [markdown]
# ## Why league tables mislead
#
# Build a service where **every therapist is equally good**: no therapist component in the
# outcome or the alliance. Any ranking of these therapists is pure chance.

# %%
equal = simulate_study(n_clients=600, n_therapists=30, outcome_sd_therapist=0,
                       alliance_sd_therapist=0, seed=11)  # fmt: skip
league = therapist_shrinkage(client_table(equal.sessions))
league.sort_values("rank_raw").head(5).round(2)

# %% [markdown]
# The top of the raw league table is made of the smallest caseloads, several points "better"
# than average, though no therapist is. The multilevel model finds no therapist variance and
# shrinks every effect to zero. Goldstein and Spiegelhalter (1996) made the case against
# ranking hospitals and schools this way; the same holds for therapists. A funnel plot (the
# annual report draws one) is the fairer display: each therapist against control limits that
# widen for small caseloads (Spiegelhalter, 2005).
#
# ---
# ## Exercises
#
# **Exercise 1.** In the service of equally good therapists, how far apart are the best and
# the worst raw means? And the shrunken ones?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
league[["raw", "shrunken"]].agg(["min", "max"]).round(2)
# Several ORS points separate "best" and "worst" raw means, by chance alone; the shrunken
# effects are all zero.

# %% [markdown]
# **Exercise 2.** Draw up a funnel-plot table for the demo service: each therapist's rate of
# reliable improvement among clients who finished, with 95% and 99.8% control limits. Use
# `client_outcomes(sessions, "ors")` and `funnel(flags, unit, value)`. Is any therapist
# outside the 99.8% limits?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
outcomes = client_outcomes(sessions, "ors")
finished = outcomes[outcomes["finished"]]
table = funnel(finished, "therapist_id", "reliable_improvement")
outside = table[["outside_95", "outside_998"]].sum()
print(f"service rate {table.attrs['overall']:.0%}; therapists outside the 95% limits: "
      f"{outside['outside_95']}, outside the 99.8% limits: {outside['outside_998']}")  # fmt: skip
table[["therapist_id", "n", "events", "rate", "low_998", "high_998"]].round(2).head()

# %% [markdown]
# ## References
#
# - Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance–outcome
#   correlation. *Journal of Consulting and Clinical Psychology, 75*(6), 842–852.
# - Del Re, A. C., Flückiger, C., Horvath, A. O., Symonds, D., & Wampold, B. E. (2012).
#   Therapist effects in the therapeutic alliance–outcome relationship: A restricted-maximum
#   likelihood meta-analysis. *Clinical Psychology Review, 32*(7), 642–649.
# - Goldstein, H., & Spiegelhalter, D. J. (1996). League tables and their limitations.
#   *Journal of the Royal Statistical Society A, 159*(3), 385–443.
# - Johns, R. G., Barkham, M., Kellett, S., & Saxon, D. (2019). A systematic review of
#   therapist effects. *Clinical Psychology Review, 67*, 78–93.
# - Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
#   (2008). The multilevel latent covariate model. *Psychological Methods, 13*(3), 203–229.
# - Spiegelhalter, D. J. (2005). Funnel plots for comparing institutional performance.
#   *Statistics in Medicine, 24*(8), 1185–1202.
#
# **Next:** `05_session_by_session`: the alliance as a state that changes from session to
# session.
