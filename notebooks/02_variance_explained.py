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
# # 02 · How much does the alliance explain?
#
# **Learning goals.** After this notebook you can
#
# 1. estimate the alliance–outcome correlation the way the meta-analyses do: the alliance
#    early in therapy against the final outcome, holding the starting level constant;
# 2. say what "the alliance explains about 8–10% of outcome variance" means, and where the
#    number comes from (r²);
# 3. explain why r ≈ .28 is a moderate effect that matters in practice (the binomial effect
#    size display);
# 4. read the R² of a multilevel model (marginal and conditional);
# 5. see how much one service's estimate can differ from the literature by chance alone.
#
# Run the cells from top to bottom. Solutions to the exercises are hidden: click the three
# dots (…) under a solution cell to reveal it.

# %%
# %matplotlib inline
import numpy as np
import pandas as pd

from allianceanalysis import figures
from allianceanalysis.derive import client_table
from allianceanalysis.effects import binomial_effect_size_display
from allianceanalysis.instruments import get_instrument
from allianceanalysis.io import load_sessions
from allianceanalysis.models import alliance_outcome, partial_correlation
from allianceanalysis.simulate import simulate_study

ors, srs = get_instrument("ors"), get_instrument("srs")
sessions = load_sessions("../data/demo/sessions.csv")
clients = client_table(sessions, early_session=3)
clients[["client_id", "therapist_id", "outcome_intake", "alliance_early", "outcome_final",
         "eligible"]].head()  # fmt: skip

# %% [markdown]
# ## The question, made exact
#
# Flückiger et al. (2018) pooled 295 studies of more than 30,000 patients: the alliance
# correlates with outcome at **r = .278** (95% CI .256 to .299). Most of those studies
# measured the alliance early (around session 3) and the outcome at the end, and many
# controlled for the starting level, because clients who start better off may both rate the
# alliance higher and end better off.
#
# `client_table` gives each client the three numbers that question needs:
# `outcome_intake` (ORS at session 1), `alliance_early` (SRS at session 3) and
# `outcome_final` (the last ORS after session 3). Clients who lack one of them are not
# `eligible`, and the reason is recorded.

# %%
clients["exclusion"].value_counts(dropna=False)

# %% [markdown]
# The model is the catalogue's `alliance_outcome` (`docs/models.md`):
#
# `outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)`
#
# It reports the slope of the early alliance and, beside it, the **partial correlation** of
# alliance and final outcome controlling for intake, with two intervals: Fisher's (which
# treats clients as independent) and a bootstrap that resamples whole therapists' caseloads
# (clients of one therapist are not independent).

# %%
models = alliance_outcome(clients, bootstrap=1000, seed=1)
models.set_index("term").loc[
    ["alliance_early", "partial_r", "partial_r_bootstrap", "r2_alliance", "r2_marginal",
     "r2_conditional"], ["estimate", "ci_low", "ci_high", "n_obs"]
].round(3)  # fmt: skip

# %%
figures.alliance_outcome_scatter(clients, models, ors, srs)

# %% [markdown]
# ## "Explains about 10% of the variance"
#
# A correlation squared, r², is the share of the variance of one variable that a straight
# line on the other accounts for. For the literature's r = .28, r² = .078: **about 8%**
# (Martin, Garske & Davis, 2000, found r = .22; Horvath et al., 2011, r = .275). Here the
# partial correlation's square, `r2_alliance`, is the same quantity for this service.
#
# Is 8% small? By Cohen's (1988) rules of thumb, r = .1 is small, .3 medium and .5 large, so
# .28 is close to medium. Squaring makes every effect look small; a better way to see it is
# to ask what it means for clients. Rosenthal and Rubin's (1982) **binomial effect size
# display** splits clients at the median of both variables: a correlation r then corresponds
# to a success rate of .5 + r/2 among clients with the better alliance against .5 − r/2
# among the others.

# %%
for label, r in [("literature", 0.278), ("this service", models.set_index("term").loc[
        "partial_r", "estimate"])]:  # fmt: skip
    better, worse = binomial_effect_size_display(r)
    print(f"{label}: r = {r:.2f}, r² = {r * r:.3f}; success {better:.0%} with the better "
          f"alliance against {worse:.0%}")  # fmt: skip

# %% [markdown]
# An "8%" effect is the difference between 64 and 36 clients in a hundred doing well.
#
# ## R² in a multilevel model
#
# Clients are nested in therapists, so the model has two sources of variance besides the
# fixed part. Nakagawa and Schielzeth (2013) define the **marginal R²** (the share explained
# by the fixed effects: intake and alliance) and the **conditional R²** (fixed effects and
# the therapist random effect together). When the therapist variance is estimated at zero,
# as it often is in a small service, the two are equal.
#
# ## One service is not the literature
#
# How far can a service of this size land from the truth by chance alone? The simulator
# knows the truth. Here are ten simulated services of 200 clients each, generated with the
# same parameters (whose implied partial correlation is about .28):

# %%
estimates = []
for seed in range(10):
    study = simulate_study(n_clients=200, n_therapists=15, seed=seed)
    sample = client_table(study.sessions)
    table = partial_correlation(sample[sample["eligible"]], "alliance_early", "outcome_final",
                                "outcome_intake")  # fmt: skip
    estimates.append(table.set_index("term").loc["partial_r", ["estimate", "ci_low", "ci_high",
                                                                 "n_obs"]])  # fmt: skip
pd.DataFrame(estimates).reset_index(drop=True).round(2)

# %% [markdown]
# With about 140 eligible clients each, the estimates spread from around .1 to around .4.
# A single service finding r = .15 or r = .40 is not evidence that it differs from the
# literature; its confidence interval says how much it can tell.
#
# ---
# ## Exercises
#
# **Exercise 1.** What correlation would explain exactly 10% of outcome variance?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
print(f"r = {np.sqrt(0.10):.3f} explains 10%; the literature's .278 explains "
      f"{0.278**2:.1%}")  # fmt: skip

# %% [markdown]
# **Exercise 2.** Compute the plain (zero-order) correlation of early alliance and final
# outcome among eligible clients, without controlling for intake, and compare it with the
# partial correlation above. Why might they differ?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
eligible = clients[clients["eligible"]]
plain = eligible["alliance_early"].corr(eligible["outcome_final"])
partial = models.set_index("term").loc["partial_r", "estimate"]
print(f"zero-order r = {plain:.3f}, partial r given intake = {partial:.3f}")
# Intake explains much of the final outcome (a third of its variance here). The partial r
# removes that part from both variables before correlating them, so what is left of the
# final outcome is less cluttered by where clients started: here the alliance's association
# is a little clearer. Where intake and alliance are correlated, controlling can also shrink
# it: that is why the meta-analyses report which studies controlled for intake.

# %% [markdown]
# **Exercise 3.** Simulate one large service (2,000 clients) in which the alliance has no
# effect on outcome (`alliance_effect_between=0, alliance_effect_within=0`) and estimate the
# partial correlation. Is it zero? If not, look up `improvement_to_alliance` in
# `SimulationParameters` (the docstring of `allianceanalysis.simulate`) and simulate again
# with it set to 0 as well.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
for label, feedback in [("early improvement raises the alliance", 0.05), ("it does not", 0.0)]:
    study = simulate_study(
        n_clients=2000,
        n_therapists=60,
        alliance_effect_between=0,
        alliance_effect_within=0,
        improvement_to_alliance=feedback,
        seed=3,
    )
    sample = client_table(study.sessions)
    row = (
        partial_correlation(
            sample[sample["eligible"]], "alliance_early", "outcome_final", "outcome_intake"
        )
        .set_index("term")
        .loc["partial_r"]
    )
    print(f"{label}: partial r = {row['estimate']:.3f} [{row['ci_low']:.3f}, "
          f"{row['ci_high']:.3f}]")  # fmt: skip
# The alliance has no effect in either study, yet in the first the session-3 alliance
# correlates with the final outcome: clients who improved early rate the alliance higher,
# and early improvers end better. The correlation is real; the causal story is not. This is
# the early-improvement critique of notebook 03.

# %% [markdown]
# ## References
#
# - Cohen, J. (1988). *Statistical power analysis for the behavioral sciences* (2nd ed.).
#   Erlbaum.
# - Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in
#   adult psychotherapy: A meta-analytic synthesis. *Psychotherapy, 55*(4), 316–340.
# - Horvath, A. O., Del Re, A. C., Flückiger, C., & Symonds, D. (2011). Alliance in individual
#   psychotherapy. *Psychotherapy, 48*(1), 9–16.
# - Martin, D. J., Garske, J. P., & Davis, M. K. (2000). Relation of the therapeutic alliance
#   with outcome and other variables: A meta-analytic review. *Journal of Consulting and
#   Clinical Psychology, 68*(3), 438–450.
# - Nakagawa, S., & Schielzeth, H. (2013). A general and simple method for obtaining R² from
#   generalized linear mixed-effects models. *Methods in Ecology and Evolution, 4*(2),
#   133–142.
# - Rosenthal, R., & Rubin, D. B. (1982). A simple, general purpose display of magnitude of
#   experimental effect. *Journal of Educational Psychology, 74*(2), 166–169.
#
# **Next:** `03_early_alliance`: when does the alliance form, and is it more than early
# improvement?
