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
# # 05 · Session by session
#
# **Learning goals.** After this notebook you can
#
# 1. separate a client's typical alliance (*trait-like*, between clients) from their
#    session-to-session ups and downs (*state-like*, within a client);
# 2. explain why a correlation over all sessions mixes the two, and compute the
#    repeated-measures correlation instead;
# 3. fit and read a lagged model: does a better-than-usual session predict a better next
#    session?
# 4. name the traps of lagged within-person models (Nickell bias, person-specific trends);
# 5. describe ruptures and their repair, and see the "V" they leave in the alliance.
#
# Run the cells from top to bottom. Solutions are hidden: click the three dots (…) under a
# solution cell to reveal it.

# %%
# %matplotlib inline
import numpy as np

from allianceanalysis import figures
from allianceanalysis.derive import rupture_windows, session_pairs, session_table
from allianceanalysis.instruments import get_instrument
from allianceanalysis.io import load_sessions
from allianceanalysis.models import alliance_next_session, growth, rm_corr
from allianceanalysis.simulate import simulate_study

srs = get_instrument("srs")
sessions = load_sessions("../data/demo/sessions.csv")
table = session_table(sessions)
table[["client_id", "session", "alliance", "alliance_client_mean", "alliance_within",
       "outcome", "outcome_within"]].head(6).round(1)  # fmt: skip

# %% [markdown]
# ## Trait and state
#
# `session_table` splits every rating into the client's own mean over their sessions
# (`alliance_client_mean`, the trait-like part: how this client tends to rate the alliance)
# and the session's deviation from it (`alliance_within`, the state-like part: this session
# was better or worse than usual for this client). Zilcha-Mano (2017) argues that the two
# answer different questions: the trait-like part says which clients do well, the state-like
# part whether *working on* the alliance in a given session helps.
#
# ## One correlation over all sessions mixes both
#
# Correlating alliance and outcome over every session treats 1,800 sessions of 300 clients
# as independent, and blends between-client and within-client association. The
# **repeated-measures correlation** (Bakdash & Marusich, 2017) uses only the within-client
# part: the common slope of outcome on alliance inside each client.

# %%
pooled = table["alliance"].corr(table["outcome"])
within = rm_corr(table).set_index("term").loc["r"]
print(f"pooled over sessions: r = {pooled:.3f}")
print(f"repeated-measures (within clients): r = {within['estimate']:.3f} "
      f"[{within['ci_low']:.3f}, {within['ci_high']:.3f}]")  # fmt: skip

# %% [markdown]
# The package computes the repeated-measures correlation by centring within clients, which
# gives pingouin's `rm_corr` result without its table of one column per client (that table
# is what makes pingouin's version infeasible for a service with thousands of clients).
#
# ## Does a good session predict a better next one?
#
# The lagged model of Falkenström, Granström and Holmqvist (2013), the catalogue's
# `alliance_next_session`, pairs each session with the next one:
#
# `outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session`
# `+ (1 | client_id)`
#
# `alliance_within` is the state-like effect: outcome at the next session per point of
# alliance above the client's usual level, holding this session's outcome, the client's typical
# alliance and the session number constant.

# %%
pairs = session_pairs(sessions)
lagged = alliance_next_session(pairs)
lagged.set_index("term").loc[
    ["outcome_within", "alliance_within", "alliance_client_mean", "session"],
    ["estimate", "ci_low", "ci_high", "p_value"],
].round(3)

# %% [markdown]
# ## The traps
#
# - **Nickell bias.** The lagged outcome is centred on the client's mean, which includes the
#   outcome it predicts. With few sessions per client this biases the lagged-outcome slope
#   by about −(1 + ρ) / (T − 1) (Nickell, 1981), and the bias spills into the alliance slope.
# - **Person-specific trends.** Clients who improve steadily may also rate the alliance
#   higher as therapy goes on; a within-client association can then be two parallel trends.
#   Detrending, or giving each client their own slope over sessions, is a sensitivity
#   analysis: the catalogue's `growth` model does the latter.
# - Falkenström, Solomonov and Rubel (2022) recommend the random-intercept cross-lagged panel
#   model (Hamaker, Kuiper & Grasman, 2015) for these questions.

# %%
trend = growth(table)
trend.set_index("term").loc[["session", "alliance_within", "alliance_client_mean"],
                            ["estimate", "ci_low", "ci_high"]].round(3)  # fmt: skip

# %% [markdown]
# With each client's own slope over sessions, the state-like alliance effect is smaller but
# still there.
#
# ## Ruptures and repair
#
# A **rupture** is a deterioration in the alliance: a disagreement about goals or tasks, or a
# strain in the bond (Safran & Muran, 2000). Many are repaired, and the alliance returns to
# where it was, a "V" over sessions (Stiles et al., 2004). In their meta-analysis, Eubanks,
# Muran and Safran (2018) found rupture repair associated with better outcome (r = .29, 11
# studies).
#
# Detecting ruptures in real ratings needs a rule (a drop larger than the measure's noise).
# Here we use a simulated service whose ruptures are *known*, and look at the alliance around
# each one.

# %%
study = simulate_study(n_clients=1500, n_therapists=50, seed=17)
repaired = study.latent["rupture_repaired"].map({True: "repaired", False: "not repaired"})
windows = rupture_windows(study.sessions, study.latent["rupture"], kind=repaired)
figures.rupture_profile(windows, srs)

# %% [markdown]
# On average a rupture costs about seven SRS points. Repaired ruptures climb back within two
# sessions; unrepaired ones leave the alliance lower. (The ceiling at 40 hides part of each
# drop: clients rating 40 before a rupture may have been "above" 40.)
#
# ---
# ## Exercises
#
# **Exercise 1.** Estimate the size of the Nickell bias in the demo data: use the average
# number of sessions per client for T and the `outcome_within` estimate of the lagged model
# for ρ.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
T = table.groupby("client_id").size().mean()
rho = lagged.set_index("term").loc["outcome_within", "estimate"]
print(f"T = {T:.1f} sessions, rho = {rho:.2f}: bias about {-(1 + rho) / (T - 1):.2f}")

# %% [markdown]
# **Exercise 2.** Simulate a service where only one rupture in five is repaired
# (`repair_probability=0.2`) and draw the V. What is the average change from before the
# rupture three sessions later, for all ruptures together? Compare with the service above.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
rarely = simulate_study(n_clients=1500, n_therapists=50, seed=17, repair_probability=0.2)
rare_windows = rupture_windows(rarely.sessions, rarely.latent["rupture"])
for label, w in [("repair 60%", windows), ("repair 20%", rare_windows)]:
    later = w.loc[w["offset"] == 3, "change"]
    print(f"{label}: change after three sessions {np.nanmean(later):.2f} SRS points")
figures.rupture_profile(rare_windows, srs)

# %% [markdown]
# ## References
#
# - Bakdash, J. Z., & Marusich, L. R. (2017). Repeated measures correlation. *Frontiers in
#   Psychology, 8*, 456.
# - Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A
#   meta-analysis. *Psychotherapy, 55*(4), 508–519.
# - Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
#   symptomatic improvement session by session. *Journal of Counseling Psychology, 60*(3),
#   317–328.
# - Falkenström, F., Solomonov, N., & Rubel, J. A. (2022). How to model and interpret
#   cross-lagged effects in psychotherapy mechanisms of change research. *Psychotherapy
#   Research, 32*(5), 681–694.
# - Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
#   cross-lagged panel model. *Psychological Methods, 20*(1), 102–116.
# - Nickell, S. (1981). Biases in dynamic models with fixed effects. *Econometrica, 49*(6),
#   1417–1426.
# - Safran, J. D., & Muran, J. C. (2000). *Negotiating the therapeutic alliance: A relational
#   treatment guide*. Guilford.
# - Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies, R.,
#   Rees, A., & Barkham, M. (2004). Patterns of alliance development and the rupture–repair
#   hypothesis. *Journal of Counseling Psychology, 51*(1), 81–92.
# - Zilcha-Mano, S. (2017). Is the alliance really therapeutic? Revisiting this question in
#   light of recent methodological advances. *American Psychologist, 72*(4), 311–325.
#
# **Next:** `06_simulate_a_study`: plan a study of your own.
