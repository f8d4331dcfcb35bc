"""Write the reference data of the within-person methods (tests/test_within_person.py).

- ``data/within_person.csv``: :func:`allianceanalysis.simulate_within.simulate_panel`, 1,500
  clients over 8 sessions with client-specific trends, 5% dropout after each session and 5%
  missing ratings (the RI-CLPM's and the detrended model's reference);
- ``data/contextual.csv``: :func:`allianceanalysis.simulate_within.simulate_contextual`, 150
  therapists with 4 clients each, plus a client-level ``diagnosis`` (three levels) and ``age``
  (seeded draws) as covariates (the latent disaggregation's reference).

Run from the repository root: ``.venv/bin/python tests/reference/make_within_person_data.py``.
"""

import numpy as np

from allianceanalysis.simulate_within import simulate_contextual, simulate_panel

panel = simulate_panel(
    n_clients=1500,
    n_therapists=60,
    waves=8,
    seed=2020,
    trend_sd_alliance=0.3,
    trend_sd_outcome=0.6,
    trend_correlation=0.5,
    dropout=0.05,
    missing=0.05,
)
panel.sessions.to_csv("tests/reference/data/within_person.csv", index=False, lineterminator="\n")

sessions = simulate_contextual(n_therapists=150, clients_per_therapist=4, seed=2021).sessions
clients = sessions["client_id"].unique()
rng = np.random.default_rng(2022)
diagnosis = dict(
    zip(clients, rng.choice(["anxiety", "depression", "other"], len(clients)), strict=True)
)
age = dict(zip(clients, np.round(rng.normal(40.0, 12.0, len(clients))), strict=True))
sessions["diagnosis"] = sessions["client_id"].map(diagnosis)
sessions["age"] = sessions["client_id"].map(age)
sessions.to_csv("tests/reference/data/contextual.csv", index=False, lineterminator="\n")
