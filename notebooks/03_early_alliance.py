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
# # 03 · The early alliance
#
# **Learning goals.** After this notebook you can
#
# 1. describe how the alliance *forms* over the first sessions;
# 2. state the early-improvement critique: clients who already feel better rate the alliance
#    higher, so the alliance may only mirror early change;
# 3. test whether the early alliance predicts the final outcome beyond early change, and
#    check how the answer depends on the session chosen (k);
# 4. explain why controlling for early change can remove too little *or too much*, using
#    simulated worlds where the truth is known.
#
# Run the cells from top to bottom. Solutions are hidden: click the three dots (…) under a
# solution cell to reveal it.

# %%
# %matplotlib inline
import pandas as pd

from allianceanalysis import figures
from allianceanalysis.derive import client_table, session_table
from allianceanalysis.instruments import get_instrument
from allianceanalysis.io import load_sessions
from allianceanalysis.models import alliance_outcome, early_alliance
from allianceanalysis.simulate import simulate_study

srs = get_instrument("srs")
sessions = load_sessions("../data/demo/sessions.csv")
table = session_table(sessions)
figures.alliance_over_sessions(table, client_table(sessions), srs, early_session=3)

# %% [markdown]
# ## The alliance forms early
#
# The alliance is built in the first few sessions and then mostly holds, with dips (Horvath
# & Luborsky, 1993): the mean rises over roughly the first five sessions. Studies therefore
# measure it early, most often at session 3 to 5, early enough to predict what follows and
# late enough for the relationship to have formed.
#
# One session's rating is a noisy measure of a client's alliance: Crits-Christoph et al.
# (2011) estimated the generalisability of a single session's rating at about .77. Part of
# the difference between clients at session 3 is that day's mood.

# %%
sessions.groupby("session")["srs"].agg(["mean", "count"]).head(8).round(1)

# %% [markdown]
# ## The early-improvement critique
#
# DeRubeis and Feeley (1990) found that in cognitive therapy for depression the alliance did
# not predict later change once *earlier* symptom change was accounted for: clients who have
# already improved may simply like their therapist more. The alliance would then be a
# by-product of change, not a cause of it.
#
# The catalogue's `early_alliance` model asks the question for each k from 1 to 5
# (`docs/models.md`):
#
# `outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)`
#
# with the alliance at session k and `early_change` = outcome at k − outcome at intake (left
# out at k = 1, where it is zero).

# %%
models = early_alliance(sessions)
rows = models[models["term"].isin(["alliance_early", "early_change"])]
rows.pivot(index="model", columns="term", values="estimate").round(3)

# %%
figures.early_alliance_by_k(models)

# %% [markdown]
# Compare k = 3 with and without the control for early change. Without it (the model of
# notebook 02) the alliance predicts the final outcome; with it, in this service, the
# coefficient is close to zero.

# %%
without = alliance_outcome(client_table(sessions, early_session=3), bootstrap=200)
with_control = models[models["model"] == "early_alliance_k3"]
pd.concat([without, with_control]).query("term == 'alliance_early'")[
    ["model", "estimate", "ci_low", "ci_high", "n_obs"]
].round(3)

# %% [markdown]
# ## Too little, or too much?
#
# Two stories fit that pattern, and they call for opposite conclusions:
#
# - **Confounding.** Early improvement raises the alliance *and* predicts the final outcome.
#   Without the control, the alliance gets credit for change it did not cause; the control
#   is right.
# - **Mediation.** The alliance already helped clients improve in the first sessions. Early
#   change is then part of the alliance's effect, and controlling for it removes a real
#   effect (over-adjustment).
#
# The simulator can build each world with a known truth. In world A the alliance has no
# effect at all, but early improvement raises it strongly. In world B the alliance has its
# usual effect and improvement does not feed back.

# %%
worlds = {
    "A: no alliance effect, improvement raises the alliance": dict(
        alliance_effect_between=0, alliance_effect_within=0, improvement_to_alliance=0.5
    ),
    "B: alliance effect, no feedback from improvement": dict(improvement_to_alliance=0.0),
}
results = []
for world, changes in worlds.items():
    study = simulate_study(n_clients=2000, n_therapists=60, seed=7, **changes)
    plain = alliance_outcome(client_table(study.sessions), bootstrap=100)
    controlled = early_alliance(study.sessions, early_sessions=(3,))
    for label, fitted in [("without early change", plain), ("with early change", controlled)]:
        row = fitted.set_index("term").loc["alliance_early"]
        results.append({"world": world, "model": label, "alliance_early": row["estimate"],
                        "ci_low": row["ci_low"], "ci_high": row["ci_high"]})  # fmt: skip
pd.DataFrame(results).round(3)

# %% [markdown]
# In world A the control is needed: without it the alliance looks effective though it does
# nothing. In world B the control hides most of a real effect, because in these simulated
# clients half of the change has already happened by session 3, and the alliance drove part
# of it.
#
# So "the alliance predicts outcome beyond early improvement" is strong evidence when it
# holds, but its failure is not proof that the alliance does not matter. The individual-
# participant meta-analysis of Flückiger et al. (2020; 17 studies, 5,350 patients) found
# effects running both ways: early improvement predicts later alliance *and* alliance
# predicts later improvement. Separating the two needs repeated measures of both, session
# by session: notebook 05.
#
# ---
# ## Exercises
#
# **Exercise 1.** In the demo service, at which k is the alliance coefficient largest when
# early change is controlled, and do the intervals of the five k overlap?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
alliance_rows = models[models["term"] == "alliance_early"]
alliance_rows[["model", "estimate", "ci_low", "ci_high", "n_obs"]].round(3)
# k = 1 has no early change to control. From k = 2 on, every interval contains zero and they
# all overlap: the data cannot tell the ks apart. Note how n_obs falls as k rises: clients
# who left before session k have no alliance rating there.

# %% [markdown]
# **Exercise 2.** In world B, make change slower (`change_sessions=8` instead of 2.5, so
# that less of the total change has happened by session 3). How much of the alliance effect
# survives the control for early change now?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
slow = simulate_study(n_clients=2000, n_therapists=60, seed=7, improvement_to_alliance=0.0,
                      change_sessions=8)  # fmt: skip
for label, fitted in [
    ("without early change", alliance_outcome(client_table(slow.sessions), bootstrap=100)),
    ("with early change", early_alliance(slow.sessions, early_sessions=(3,))),
]:
    row = fitted.set_index("term").loc["alliance_early"]
    print(f"{label}: {row['estimate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
# With less change before session 3, less of the alliance's effect is inside the control,
# and more of it survives.

# %% [markdown]
# ## References
#
# - Crits-Christoph, P., Gibbons, M. B. C., Hamilton, J., Ring-Kurtz, S., & Gallop, R. (2011).
#   The dependability of alliance assessments: The alliance–outcome correlation is larger
#   than you might think. *Journal of Consulting and Clinical Psychology, 79*(3), 267–278.
# - DeRubeis, R. J., & Feeley, M. (1990). Determinants of change in cognitive therapy for
#   depression. *Cognitive Therapy and Research, 14*(5), 469–482.
# - Flückiger, C., Rubel, J., Del Re, A. C., Horvath, A. O., Wampold, B. E., Crits-Christoph,
#   P., Atzil-Slonim, D., Compare, A., Falkenström, F., Ekeblad, A., Errázuriz, P., Fisher, H.,
#   Hoffart, A., Huppert, J. D., Kivity, Y., Kumar, M., Lutz, W., Muran, J. C., Strunk, D. R.,
#   … Barber, J. P. (2020). The reciprocal relationship between alliance and early treatment
#   symptoms. *Journal of Consulting and Clinical Psychology, 88*(9), 829–843.
# - Horvath, A. O., & Luborsky, L. (1993). The role of the therapeutic alliance in
#   psychotherapy. *Journal of Consulting and Clinical Psychology, 61*(4), 561–573.
#
# **Next:** `04_therapists_and_clients`: is the alliance a property of the therapist?
