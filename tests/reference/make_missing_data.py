"""Write the reference data of multiple imputation (tests/test_missing_data.py).

``data/missing_clients.csv``: the imputation model's data at early session 3
(:func:`allianceanalysis.missing_data.imputation_data`) of the synthetic sessions
``data/ors_srs.csv`` — the incomplete scores, the complete predictors, each case's therapist
and its ending (``dropout``, missing for an unknown one) — for R's mice
(``../missing_data_reference.R``).

Run from the repository root: ``.venv/bin/python tests/reference/make_missing_data.py``.
"""

import pandas as pd

from allianceanalysis.missing_data import imputation_data

sessions = pd.read_csv("tests/reference/data/ors_srs.csv")
data = imputation_data(sessions, "ors", "srs", 3)
frame = pd.concat(
    [
        data.base[["client_id", "therapist_id", "dropout"]],
        data.y,
        data.x.drop(columns="Intercept"),
    ],
    axis=1,
)
frame.to_csv("tests/reference/data/missing_clients.csv", index=False, lineterminator="\n")
