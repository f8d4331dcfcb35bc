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
# # 01 · Meet the data
#
# **Learning goals.** After this notebook you can
#
# 1. read a file of therapy sessions and say what one row is;
# 2. explain what the Outcome Rating Scale (ORS) and the Session Rating Scale (SRS) ask
#    clients, their ranges and cut-offs;
# 3. draw clients' outcome trajectories and see how the alliance is rated over sessions;
# 4. explain the SRS *ceiling* and why it matters for every analysis that follows.
#
# **How to use this notebook.** Run the cells from top to bottom (Shift + Enter). Each
# exercise has a cell for your answer, followed by a solution whose code is hidden: click the
# three dots (…) under it to reveal it once you have tried.
#
# All data here are synthetic: produced by this package's simulator with a fixed seed,
# modelled on what services that use the ORS and SRS report. No real client is in them.

# %%
# %matplotlib inline
import pandas as pd

from allianceanalysis import figures
from allianceanalysis.derive import client_table, session_table
from allianceanalysis.effects import in_clinical_range
from allianceanalysis.instruments import get_instrument, instrument_table
from allianceanalysis.io import load_sessions

sessions = load_sessions("../data/demo/sessions.csv")
sessions.head(8)

# %% [markdown]
# ## One row per attended session
#
# Routine outcome monitoring asks clients to rate two short scales at every session, so the
# natural unit of the data is the **session**. Each row holds
#
# - `client_id`, `therapist_id`, `site_id`: pseudonymous codes (the loader refuses names,
#   emails, phone numbers, NHS numbers and dates of birth);
# - `session`: the session number within the client's episode, and `session_date`;
# - `end_status`: how the episode ended, `planned`, `dropout` (an unplanned ending) or
#   `ongoing`;
# - `ors` and `srs`: the two totals, 0–40 each (missing when the client did not fill in the
#   form that day).
#
# `load_sessions` checked every row against the data contract before handing it over
# (`docs/data-format.md`): a file with an impossible score or a duplicated session would have
# been refused with the row, column, value and rule.

# %%
print(f"{sessions['client_id'].nunique()} clients, {sessions['therapist_id'].nunique()} therapists,"
      f" {len(sessions)} sessions")  # fmt: skip
sessions.groupby("client_id")["session"].size().describe()

# %% [markdown]
# ## What the two scales ask
#
# Both are four 10-cm lines; the client marks each line and every mark is scored 0–10, so a
# total runs from 0 to 40 (Miller et al., 2003; Duncan et al., 2003).
#
# | ORS item (how have you been doing?) | SRS item (how was today's session?) |
# | --- | --- |
# | **Individually**: personal well-being | **Relationship**: felt heard, understood, respected |
# | **Interpersonally**: family, close relationships | **Goals and topics**: what I wanted |
# | **Socially**: work, school, friendships | **Approach or method**: the approach fits me |
# | **Overall**: general sense of well-being | **Overall**: today's session was right for me |
#
# The SRS items follow Bordin's (1979) definition of the working alliance: agreement on
# **goals**, agreement on **tasks** (approach), and the **bond** (relationship). The package's
# instrument registry holds every scale's range, direction, cut-off and reliable-change
# threshold, each with its source:

# %%
registry = pd.DataFrame(instrument_table()).set_index("key")
registry.loc[["ors", "srs"]]

# %% [markdown]
# An ORS total **below 25** places an adult in the clinical range (Miller et al., 2003). An
# SRS total **below 36** flags a session where the alliance may need attention (Miller &
# Duncan, 2004; sources differ on whether 36 itself is flagged, so the registry writes the
# rule out: strictly below).
#
# ## Outcome trajectories
#
# `session_table` turns the sessions into the columns every session-level analysis uses
# (`outcome`, `alliance`, and their client means). Each thin line is one client; the thick
# line is the mean with its 95% band, drawn where at least ten clients contribute.

# %%
ors, srs = get_instrument("ors"), get_instrument("srs")
table = session_table(sessions)
figures.outcome_trajectories(table, ors)

# %% [markdown]
# Most change happens early: the curve is steep over the first sessions and then flattens,
# the *dose–effect* pattern of psychotherapy (Howard et al., 1986). The mean line also hides
# who is still there: clients who leave early are no longer in the later sessions.
#
# ## The alliance over sessions, and its ceiling

# %%
clients = client_table(sessions)
figures.alliance_over_sessions(table, clients, srs, early_session=3)

# %%
at_ceiling = (sessions["srs"] == 40).mean()
below_cutoff = (sessions["srs"] < 36).mean()
print(f"SRS ratings at the maximum of 40: {at_ceiling:.0%}; below the cut-off of 36: "
      f"{below_cutoff:.0%}")  # fmt: skip

# %% [markdown]
# Clients rate the alliance high, and many give the maximum. This **ceiling** matters:
# differences among the clients at 40 cannot be seen, so the spread of the alliance is
# squeezed, and every correlation with it is pulled towards zero (restriction of range).
# A rise in the alliance over the first sessions is also visible: the alliance *forms*
# (notebook 03).
#
# ---
# ## Exercises
#
# **Exercise 1.** What share of *clients* (not sessions) rated the alliance below 36 at least
# once? Hint: group the sessions by client and take each client's lowest SRS.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
lowest = sessions.groupby("client_id")["srs"].min()
print(f"{(lowest < 36).mean():.0%} of clients had at least one SRS below 36")

# %% [markdown]
# **Exercise 2.** Draw the outcome trajectories with one panel per site
# (`figures.outcome_trajectories` takes `by="site_id"`). Do the sites look alike?

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
figures.outcome_trajectories(table, ors, by="site_id")

# %% [markdown]
# **Exercise 3.** How many clients started in the clinical range, that is with an ORS below
# 25 at their first session? Use `in_clinical_range(scores, ors)`, which applies the
# registry's rule.

# %% tags=["exercise"]
# Your answer here

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (shown folded: click the dots to read it)
intake = clients.set_index("client_id")["outcome_intake"]
clinical = in_clinical_range(intake, ors)
print(f"{int(clinical.sum())} of {int(clinical.notna().sum())} clients "
      f"({clinical.mean():.0%}) started in the clinical range")  # fmt: skip

# %% [markdown]
# ## References
#
# - Bordin, E. S. (1979). The generalizability of the psychoanalytic concept of the working
#   alliance. *Psychotherapy: Theory, Research & Practice, 16*(3), 252–260.
# - Duncan, B. L., Miller, S. D., Sparks, J. A., Claud, D. A., Reynolds, L. R., Brown, J., &
#   Johnson, L. D. (2003). The Session Rating Scale. *Journal of Brief Therapy, 3*(1), 3–12.
# - Howard, K. I., Kopta, S. M., Krause, M. S., & Orlinsky, D. E. (1986). The dose–effect
#   relationship in psychotherapy. *American Psychologist, 41*(2), 159–164.
# - Miller, S. D., Duncan, B. L., Brown, J., Sparks, J. A., & Claud, D. A. (2003). The Outcome
#   Rating Scale. *Journal of Brief Therapy, 2*(2), 91–100.
# - Miller, S. D., & Duncan, B. L. (2004). *The Outcome and Session Rating Scales:
#   Administration and scoring manual*. Institute for the Study of Therapeutic Change.
#
# **Next:** `02_variance_explained`: how strongly does the alliance go with outcome?
