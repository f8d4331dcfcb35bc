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
# # 06 · Simulate a study before you run it
#
# **Learning goals.** After this notebook you can
#
# 1. generate a realistic service with the simulator and read off the truth it was built
#    with;
# 2. check whether an analysis recovers that truth, and where it is biased;
# 3. estimate power by simulation: the share of studies of a given design that would detect
#    an effect, with its Monte Carlo error;
# 4. decide how many therapists and clients a study of the *between-therapist* alliance
#    effect needs.
#
# Run the cells from top to bottom (this notebook simulates a few hundred studies: allow
# half a minute). Solutions are hidden: click the three dots (…) under a solution cell to
# reveal it.

# %%
# %matplotlib inline
from allianceanalysis import figures
from allianceanalysis.derive import client_table
from allianceanalysis.models import alliance_disaggregated
from allianceanalysis.power import power_curve
from allianceanalysis.simulate import SimulationParameters, simulate_study

study = simulate_study(n_clients=300, n_therapists=20, seed=2026)
truth = study.truth()
{key: truth[key] for key in ("n_clients", "n_therapists", "alliance_effect_between",
                             "alliance_effect_within", "alliance_icc_therapist",
                             "alliance_reliability")}  # fmt: skip

# %% [markdown]
# ## A study with known truth
#
# `simulate_study` builds a service from the top down: sites, therapists, clients, weekly
# sessions, with the alliance made of a therapist part, a client part and a session part,
# and the outcome's gain depending on the therapist part (`alliance_effect_between`, ORS
# points per SRS point) and the client part (`alliance_effect_within`) of the alliance. Every
# parameter, its default and its source are in `docs/simulation.md`. `study.sessions` is the
# data a service would have; `study.truth()` is what only the simulator knows.
#
# Fit the Baldwin disaggregation of notebook 04 and compare with the truth:

# %%
fit = alliance_disaggregated(client_table(study.sessions))
estimates = fit.set_index("term").loc[["alliance_therapist_mean", "alliance_client_dev"],
                                      ["estimate", "ci_low", "ci_high", "p_value"]]  # fmt: skip
estimates.assign(truth=[truth["alliance_effect_between"], truth["alliance_effect_within"]])

# %% [markdown]
# One study is one draw. Its intervals may or may not cover the truth, and the estimates may
# be biased for reasons the simulator makes visible: a single session's rating has
# reliability of about .76 (`alliance_reliability`), which attenuates the within slope, and
# a therapist's mean over a few clients mixes in their clients' own alliances. To see
# estimates as a *method* behaves, simulate many studies.
#
# ## Power by simulation
#
# Power is the probability that a study detects an effect that is there. For a multilevel
# design there is rarely a formula; simulation answers directly (Arnold et al., 2011): for
# each design, simulate many studies, fit the model, count how often p < .05.
#
# `power_curve` does that for the between-therapist effect (`alliance_therapist_mean`).
# Each design below is simulated 30 times, a small number chosen to keep this notebook
# quick: the Monte Carlo standard error `mc_se` says how uncertain each power estimate is.

# %%
designs = [{"n_clients": clients, "n_therapists": therapists}
           for clients in (300, 600) for therapists in (10, 20, 40)]  # fmt: skip
curve = power_curve(designs, replicates=30, seed=1)
curve[["n_clients", "n_therapists", "power", "mc_se", "ci_low", "ci_high",
       "mean_estimate"]].round(2)  # fmt: skip

# %%
figures.power_plot(curve)

# %% [markdown]
# Reading the curve:
#
# - **Therapists and clients both count, in different ways.** The between-therapist effect
#   is estimated from differences between therapists, so more therapists give more
#   information. But with the clients fixed, more therapists means fewer clients each, so
#   each therapist's mean alliance is noisier, which pulls the estimate towards the within
#   effect (`mean_estimate`) and takes back part of the gain. With 30 replicates per design,
#   differences in power smaller than about .15 are within Monte Carlo error.
# - **Check the estimates, not only the power.** `mean_estimate` is the average estimate over
#   the simulated studies, against a truth of 1.3: with few clients per therapist it is
#   pulled towards the within effect, as notebook 04 warned.
# - **The answer is only as good as the assumptions.** The effect size, the therapist
#   variance and the dropout all came from the simulator's defaults; a real plan varies
#   them, and uses enough replicates (200 gives a standard error of about .03).
#
# ---
# ## Exercises
#
# **Exercise 1.** Suppose the true between-therapist effect is only half as large
# (`alliance_effect_between=0.65`). Estimate the power of 300 clients with 10, 20 and 40
# therapists. Pass the changed parameters as `params=SimulationParameters(...)`.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
half = SimulationParameters(alliance_effect_between=0.65)
smaller = power_curve([{"n_clients": 300, "n_therapists": k} for k in (10, 20, 40)],
                      replicates=30, params=half, seed=2)  # fmt: skip
smaller[["n_therapists", "power", "mc_se"]].round(2)

# %% [markdown]
# **Exercise 2.** How many replicates does a power estimate near .8 need for a Monte Carlo
# standard error of .02? (The standard error of a proportion p from R replicates is
# √(p(1 − p)/R).)

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
p, target = 0.8, 0.02
print(f"R = p(1 - p) / se² = {p * (1 - p) / target**2:.0f} replicates")

# %% [markdown]
# **Exercise 3.** Is the test honest? Simulate a world with no alliance effect at all
# (`alliance_effect_between=0, alliance_effect_within=0`) and check that about 5% of studies
# "detect" one. How many replicates would you need to tell 5% from 8%?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
null = SimulationParameters(alliance_effect_between=0.0, alliance_effect_within=0.0)
check = power_curve([{"n_clients": 300, "n_therapists": 20}], replicates=60, params=null, seed=3)
check[["power", "mc_se", "ci_low", "ci_high"]].round(3)
# With 60 replicates the interval is wide; telling .05 from .08 needs about a thousand
# (the package's slow test uses 1,000: `make test-slow`).

# %% [markdown]
# ## References
#
# - Arnold, B. F., Hogan, D. R., Colford, J. M., & Hubbard, A. E. (2011). Simulation methods
#   to estimate design power: An overview for applied research. *BMC Medical Research
#   Methodology, 11*, 94.
# - Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance–outcome
#   correlation. *Journal of Consulting and Clinical Psychology, 75*(6), 842–852.
# - Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to
#   evaluate statistical methods. *Statistics in Medicine, 38*(11), 2074–2102.
#
# This is the last notebook. `docs/models.md` defines every model you met, in lme4 notation,
# and `docs/simulation.md` every parameter of the simulator.
