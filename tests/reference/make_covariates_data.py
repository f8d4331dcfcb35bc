"""Write tests/reference/data/covariates.csv: simulated sessions with covariates and moderators.

The demo preset's covariates (age band, diagnosis, treatment; the alliance's within-therapist
effect stronger under PDT) for 1,500 clients of 40 therapists, plus ``severity``, a
client-level number (one draw per client, seeded), as a continuous moderator. Run from the
repository root: ``.venv/bin/python tests/reference/make_covariates_data.py``.
"""

import numpy as np

from allianceanalysis.simulate import PRESETS, simulate_study

study = simulate_study(seed=404, **{**PRESETS["demo"], "n_clients": 1500, "n_therapists": 40})
sessions = study.sessions
clients = sessions["client_id"].unique()
severity = np.round(np.random.default_rng(405).normal(50.0, 10.0, len(clients)), 1)
sessions["severity"] = sessions["client_id"].map(dict(zip(clients, severity, strict=True)))
sessions.to_csv("tests/reference/data/covariates.csv", index=False, lineterminator="\n")
