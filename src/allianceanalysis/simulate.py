"""Simulate session-by-session alliance and outcome data whose truth is known.

A study is generated top down: sites -> therapists -> clients -> sessions. Every parameter is a
field of :class:`SimulationParameters` with its default, the default's source and its unit;
:func:`simulate_study` returns the observable sessions (in the session data contract) together
with the latent truth (therapist and client effects, every session's latent alliance and
outcome, ruptures) so that analyses can be checked against it.

The data-generating model
-------------------------
All scores are generated in ORS/SRS points (0-40) and mapped linearly onto the chosen
instruments at the end (see :func:`rescale`). For client *i* of therapist *j* at session *t*:

Alliance (SRS points)::

    A*_it = alliance_mean + u_j + v_i + g(t) + e_it - rupture_it
            + improvement_to_alliance * (Y*_it - Y*_i1)
    u_j ~ N(0, alliance_sd_therapist²)     therapist component
    v_i ~ N(0, alliance_sd_client²)        client component (within therapist)
    g(t) = alliance_growth * min(t - 1, formation_sessions - 1)      formation phase
    e_it = alliance_ar * e_i,t-1 + sqrt(1 - alliance_ar²) * N(0, alliance_sd_session²)

Outcome (ORS points, higher is better)::

    Y*_i1 = intake_mean + N(0, intake_sd²)
    Y*_it = Y*_i1 + gain_i * (1 - exp(-(t - 1) / change_sessions)) + state_effect * s_i,t-1
            + rupture outcome effects + N(0, measurement_sd²)                    (t >= 2)
    gain_i = gain_mean + gain_intake_slope * (Y*_i1 - intake_mean)
             + alliance_effect_between * u_j + alliance_effect_within * v_i
             + o_j + c_i + feedback_effect * feedback_i
    o_j ~ N(0, outcome_sd_therapist²), c_i ~ N(0, gain_sd_client²)

where ``s_it`` is the session-level alliance state (``A*_it`` minus the client's trait
``alliance_mean + u_j + v_i + g(t)``). The observed ratings are ``A*`` and ``Y*`` clipped to the
instrument's range and rounded to its resolution (so SRS piles up at 40, its known ceiling).
After each session before the planned last one, the client drops out with probability
``expit(logit(dropout_base) + dropout_alliance * (SRS_it - alliance_mean) + feedback_dropout *
feedback_i)`` where SRS_it is the rating as the client would record it. Ruptures (sudden drops
of the alliance) occur per session from session 2 on; repaired ruptures recover linearly over
``repair_sessions``, unrepaired ones leave a lasting drop.

The between-therapist alliance effect per point is larger than the within-therapist one
(Baldwin, Wampold & Imel, 2007); with the defaults the partial correlation of the session-3
SRS with the final ORS, controlling for intake, is about .28 (Flückiger et al., 2018) and
therapists account for about 5% of final-outcome variance (Johns et al., 2019). Both are
checked by ``tests/test_simulate.py``.

References
----------
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.

Johns, R. G., Barkham, M., Kellett, S., & Saxon, D. (2019). A systematic review of therapist
effects. Clinical Psychology Review, 67, 78-93.

Examples
--------
>>> from allianceanalysis.simulate import simulate_study
>>> study = simulate_study(n_clients=50, n_therapists=5, seed=1)
>>> list(study.sessions.columns)[:5]
['client_id', 'therapist_id', 'site_id', 'session', 'session_date']
>>> bool(study.sessions["srs"].max() <= 40)
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from .instruments import INSTRUMENTS, Instrument, get_instrument

__all__ = [
    "PRESETS",
    "SimulatedStudy",
    "SimulationParameters",
    "padded_ids",
    "rescale",
    "simulate_study",
    "split_items",
    "with_items",
    "write_clinic_export",
]

FeedbackDesign = Literal["none", "client", "therapist", "date"]
SESSION_GAPS_DAYS = (7, 14, 21)
SESSION_GAP_PROBS = (0.75, 0.20, 0.05)
"""Days between sessions and their probabilities: weekly sessions with occasional missed weeks
(illustrative, not from a published source)."""


@dataclass(frozen=True)
class SimulationParameters:
    """Parameters of :func:`simulate_study`; alliance in SRS points, outcome in ORS points.

    Defaults and their sources (a source marked *illustrative* is a plausible value chosen to
    make the other targets hold, not a published estimate):

    Design
        n_clients=300, n_therapists=20, n_sites=3; start_date and end_date (the data extraction
        date) span two UK reporting years (April to March). caseload_shape=4: therapist
        caseloads vary with a gamma-distributed weight of coefficient of variation 0.5
        (illustrative). planned_sessions_mean=8 with negative-binomial size 4 (about 8 sessions
        per episode, as in NHS Talking Therapies); ``planned_sessions_size=None`` gives every
        client the same planned number. max_sessions=30.
    Alliance
        alliance_mean=36.5, total SD about 3.3 (Duncan et al., 2003: SRS mean about 36 with a
        strong ceiling). alliance_sd_therapist=1.2, alliance_sd_client=2.6,
        alliance_sd_session=1.6: therapists hold about 13% of alliance variance and one
        session's rating has reliability (1.2² + 2.6²) / total ≈ .76, close to the
        generalizability of .77 reported by Crits-Christoph et al. (2011).
        alliance_ar=0.3 (illustrative). alliance_growth=0.4 points a session over
        formation_sessions=5 (the alliance forms over the first sessions; Horvath & Luborsky,
        1993). improvement_to_alliance=0.05 points per ORS point gained (early improvement
        feeds the alliance; Flückiger et al., 2020: effects run both ways; illustrative size).
    Outcome
        intake_mean=19.6 (Miller et al., 2003, clinical sample), intake_sd=7.0 (Miller et al.
        report 8.7; narrowed to limit floor effects). gain_mean=7.0 ORS points (above the
        reliable-change threshold of 5; illustrative), gain_intake_slope=-0.35 (clients who
        start lower gain more), change_sessions=2.5 (negatively accelerated change; Howard et
        al., 1986, dose-effect). alliance_effect_between=1.3 and alliance_effect_within=0.70
        ORS points of gain per SRS point of the therapist and client components (between >
        within: Baldwin et al., 2007; sizes calibrated to partial r ≈ .28). outcome_sd_therapist
        =0.6 (with the alliance path, therapists hold about 5% of outcome variance; Johns et
        al., 2019). gain_sd_client=6.0 and measurement_sd=2.5 (illustrative, calibrated).
        state_effect=0.3 ORS points at the next session per SRS point of session-level alliance
        (Falkenström et al., 2013, found within-client effects; illustrative size).
    Dropout
        dropout_base=0.04 a session at the mean alliance and dropout_alliance=-0.12 on the
        logit scale per SRS point (lower alliance, more dropout; Sharf et al., 2010:
        d = .55; illustrative size).
    Ruptures (Eubanks, Muran & Safran, 2018)
        rupture_rate=0.04 a session from session 2, rupture_drop=8 (SD 2) SRS points,
        repair_probability=0.6, repair_sessions=2, unrepaired_persistence=0.5 of the drop
        stays; rupture_repaired_outcome=+1.0 and rupture_unrepaired_outcome=-2.0 ORS points
        thereafter (repair goes with better outcome, r = .29; sizes illustrative).
    Missing ratings
        missing_alliance=0.05, missing_outcome=0.03 of sessions, completely at random.
    Feedback
        feedback="none" (or "client": randomised per client, "therapist": half of the
        therapists, "date": clients starting after the period's midpoint);
        feedback_effect=1.5 ORS points of gain and feedback_dropout=-0.2 on the dropout logit
        (Lambert et al., 2018 meta-analysis: small positive effects; illustrative sizes).
    Instruments
        outcome="ors", alliance="srs": any outcome or alliance scale of the registry; scores
        are mapped linearly from the ORS/SRS metric (:func:`rescale`).
    Covariates and a moderator (all illustrative)
        covariates=False; with True, each client gets an ``age_band`` (:data:`AGE_BANDS`, with
        probabilities :data:`AGE_BAND_SHARES`), a ``diagnosis`` (:data:`DIAGNOSES`,
        :data:`DIAGNOSIS_SHARES`) and a ``treatment`` (:data:`TREATMENTS`, half each), drawn
        from a stream of their own so that every other draw is as without them.
        age_band_effects and diagnosis_effects are ORS points of gain for each level (the
        first level 0); treatment_alliance_effect is the extra gain per SRS point of the
        client's alliance component under the second treatment (a moderation of the
        within-therapist alliance effect).
    """

    n_clients: int = 300
    n_therapists: int = 20
    n_sites: int = 3
    start_date: str = "2024-04-01"
    end_date: str = "2026-03-31"
    caseload_shape: float = 4.0
    planned_sessions_mean: float = 8.0
    planned_sessions_size: float | None = 4.0
    max_sessions: int = 30
    alliance_mean: float = 36.5
    alliance_sd_therapist: float = 1.2
    alliance_sd_client: float = 2.6
    alliance_sd_session: float = 1.6
    alliance_ar: float = 0.3
    alliance_growth: float = 0.4
    formation_sessions: int = 5
    improvement_to_alliance: float = 0.05
    intake_mean: float = 19.6
    intake_sd: float = 7.0
    gain_mean: float = 7.0
    gain_intake_slope: float = -0.35
    change_sessions: float = 2.5
    alliance_effect_between: float = 1.3
    alliance_effect_within: float = 0.70
    outcome_sd_therapist: float = 0.6
    gain_sd_client: float = 6.0
    measurement_sd: float = 2.5
    state_effect: float = 0.3
    dropout_base: float = 0.04
    dropout_alliance: float = -0.12
    rupture_rate: float = 0.04
    rupture_drop: float = 8.0
    rupture_drop_sd: float = 2.0
    repair_probability: float = 0.6
    repair_sessions: int = 2
    unrepaired_persistence: float = 0.5
    rupture_repaired_outcome: float = 1.0
    rupture_unrepaired_outcome: float = -2.0
    missing_alliance: float = 0.05
    missing_outcome: float = 0.03
    feedback: FeedbackDesign = "none"
    feedback_effect: float = 1.5
    feedback_dropout: float = -0.2
    outcome: str = "ors"
    alliance: str = "srs"
    covariates: bool = False
    age_band_effects: tuple[float, ...] = (0.0, -0.5, -1.0, -1.5, -2.0)
    diagnosis_effects: tuple[float, ...] = (0.0, -1.5, 0.5)
    treatment_alliance_effect: float = 0.0

    def __post_init__(self) -> None:
        _check_parameters(self)

    def replace(self, **changes: Any) -> SimulationParameters:
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **changes)

    def implied(self) -> dict[str, float]:
        """Quantities implied by the parameters.

        ``alliance_icc_therapist``: therapists' share of the variance of one alliance rating
        (before clipping; without formation, rupture and improvement terms).
        ``alliance_reliability``: the share of that variance that is stable client and therapist
        level (the generalizability of a single session's rating).
        ``early_alliance_slope_within``: the expected gain in final outcome per point of one
        session's alliance rating, within therapist and given intake: the early-alliance
        effect as a regression on a single rating sees it, ``alliance_effect_within``
        attenuated by that rating's client-level reliability. Exact when the ceiling,
        ruptures, formation growth and improvement feedback play no part.
        ``outcome_scale`` / ``alliance_scale``: instrument points per ORS / SRS point (negative
        when lower is better).

        Examples
        --------
        >>> round(SimulationParameters().implied()["alliance_reliability"], 2)
        0.76
        """
        var_t, var_c = self.alliance_sd_therapist**2, self.alliance_sd_client**2
        var_s = self.alliance_sd_session**2
        total = var_t + var_c + var_s
        return {
            "alliance_icc_therapist": var_t / total,
            "alliance_reliability": (var_t + var_c) / total,
            "early_alliance_slope_within": self.alliance_effect_within * var_c / (var_c + var_s),
            "outcome_scale": _scale(get_instrument(self.outcome)),
            "alliance_scale": _scale(get_instrument(self.alliance)),
        }


def _check_parameters(p: SimulationParameters) -> None:
    problems = []
    for name in (
        "n_clients",
        "n_therapists",
        "n_sites",
        "max_sessions",
        "formation_sessions",
        "repair_sessions",
    ):
        if getattr(p, name) < 1:
            problems.append(f"{name} must be at least 1")
    if p.n_therapists < p.n_sites:
        problems.append("n_therapists must be at least n_sites (every site has a therapist)")
    for name in (
        "missing_alliance",
        "missing_outcome",
        "rupture_rate",
        "repair_probability",
        "unrepaired_persistence",
    ):
        if not 0 <= getattr(p, name) <= 1:
            problems.append(f"{name} must be between 0 and 1")
    if not 0 < p.dropout_base < 1:
        problems.append("dropout_base must be strictly between 0 and 1")
    if not -1 < p.alliance_ar < 1:
        problems.append("alliance_ar must be strictly between -1 and 1")
    if p.planned_sessions_mean < 1:
        problems.append("planned_sessions_mean must be at least 1")
    if p.feedback not in ("none", "client", "therapist", "date"):
        problems.append("feedback must be one of none, client, therapist, date")
    for role in ("outcome", "alliance"):
        try:
            inst = get_instrument(getattr(p, role))
        except KeyError as exc:
            problems.append(str(exc).strip('"'))
            continue
        if inst.construct != role:
            problems.append(f"{role}={inst.key!r} is an {inst.construct} scale")
    if pd.Timestamp(p.end_date) <= pd.Timestamp(p.start_date):
        problems.append("end_date must be after start_date")
    if problems:
        raise ValueError("invalid simulation parameters: " + "; ".join(problems))


AGE_BANDS = ("18-25", "26-35", "36-45", "46-60", "61+")
AGE_BAND_SHARES = (0.25, 0.25, 0.2, 0.2, 0.1)
DIAGNOSES = ("anxiety", "depression", "other")
DIAGNOSIS_SHARES = (0.4, 0.45, 0.15)
TREATMENTS = ("CBT", "PDT")
"""The simulated covariates' levels and shares (``covariates=True``; illustrative)."""

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"n_clients": 300, "n_therapists": 20, "n_sites": 3, "covariates": True,
             "treatment_alliance_effect": 0.5},
    "demo-clinic-b": {"n_clients": 240, "n_therapists": 12, "n_sites": 2, "covariates": True,
                      "treatment_alliance_effect": 0.5},
}  # fmt: skip
"""Named parameter sets: ``demo`` made ``data/demo/sessions.csv`` (seed :data:`DEMO_SEED`),
``demo-clinic-b`` made ``data/demo/clinic_b.csv`` (seed :data:`DEMO_SEED` + 1, clinic export)."""
DEMO_SEED = 20261125


@dataclass
class SimulatedStudy:
    """A simulated study: observable sessions plus the truth behind them.

    Attributes
    ----------
    sessions : pandas.DataFrame
        One row per attended session in the session data contract (the data an analysis sees).
    latent : pandas.DataFrame
        Aligned row by row with ``sessions``: ``alliance_latent`` and ``outcome_latent`` (before
        clipping, rounding and missingness), ``alliance_state`` (s_it), ``rupture`` (a rupture
        began at this session) and ``rupture_repaired``.
    clients : pandas.DataFrame
        One row per client: therapist, site, condition, ``alliance_client`` (v_i), ``intake``
        (Y*_i1), ``gain`` (gain_i), ``planned_sessions``, ``sessions_attended``, ``end_status``.
    therapists : pandas.DataFrame
        One row per therapist: site, ``alliance_therapist`` (u_j), ``outcome_therapist`` (o_j),
        ``caseload``.
    parameters : SimulationParameters
        The parameters used.
    seed : int
        The seed used.
    """

    sessions: pd.DataFrame
    latent: pd.DataFrame
    clients: pd.DataFrame
    therapists: pd.DataFrame
    parameters: SimulationParameters
    seed: int
    extras: dict[str, Any] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        """The parameters, the seed and the quantities they imply
        (:meth:`SimulationParameters.implied`), as plain values."""
        return {
            **dataclasses.asdict(self.parameters),
            "seed": self.seed,
            **self.parameters.implied(),
        }


def _scale(inst: Instrument) -> float:
    span = (inst.total_max - inst.total_min) / 40.0
    return span if inst.higher_is_better else -span


def rescale(points: np.ndarray, inst: Instrument) -> np.ndarray:
    """Map ORS/SRS-metric values (0-40, higher is better) onto ``inst``'s range and direction,
    clip to the range and round to its resolution (whole numbers, or one decimal).

    Examples
    --------
    >>> from allianceanalysis.instruments import get_instrument
    >>> rescale(np.array([40.0, 25.0, 0.0]), get_instrument("phq9")).tolist()
    [0.0, 10.0, 27.0]
    """
    span = inst.total_max - inst.total_min
    fraction = np.clip(points / 40.0, 0.0, 1.0)
    value = inst.total_min + span * (fraction if inst.higher_is_better else 1.0 - fraction)
    return np.round(value, 0 if inst.integer else 1)


def split_items(
    totals: np.ndarray, inst: Instrument, rng: np.random.Generator, rounds: int = 4
) -> np.ndarray:
    """Split totals into item scores that lie in the item range and sum exactly to the total.

    Totals are spread evenly, then pairs of items trade random amounts a few times (each trade
    keeps the sum and the bounds), so items differ as they do in real forms.

    Parameters
    ----------
    totals : numpy.ndarray
        Totals in the instrument's range (NaN for a missing rating: all its items are NaN).
    inst : Instrument
        An instrument with items.
    rng : numpy.random.Generator
    rounds : int
        Number of random trades per row.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(totals), inst.item_count)``.

    Examples
    --------
    >>> from allianceanalysis.instruments import get_instrument
    >>> items = split_items(np.array([37.5]), get_instrument("srs"), np.random.default_rng(0))
    >>> float(items.sum().round(6)), bool((items <= 10).all())
    (37.5, True)
    """
    resolution = 1.0 if inst.integer else 0.1
    n = inst.item_count
    missing = np.isnan(totals)
    offset = inst.item_min * n
    units = np.rint((np.where(missing, offset, totals) - offset) / resolution).astype(np.int64)
    cap = round((inst.item_max - inst.item_min) / resolution)
    items = np.repeat((units // n)[:, None], n, axis=1)
    remainder = units % n
    order = np.argsort(rng.random((len(units), n)), axis=1)
    items += (order < remainder[:, None]).astype(np.int64)
    rows = np.arange(len(units))
    step = max(cap // 5, 1)
    for _ in range(rounds):
        a = rng.integers(0, n, len(units))
        b = (a + rng.integers(1, n, len(units))) % n
        low = np.maximum(-items[rows, a], items[rows, b] - cap)
        high = np.minimum(cap - items[rows, a], items[rows, b])
        delta = np.clip(rng.integers(-step, step + 1, len(units)), low, high)
        items[rows, a] += delta
        items[rows, b] -= delta
    values = inst.item_min + items * resolution
    values = np.round(values, 0 if inst.integer else 1)
    values[missing] = np.nan
    return values


def _planned_sessions(p: SimulationParameters, rng: np.random.Generator) -> np.ndarray:
    extra_mean = p.planned_sessions_mean - 1
    if p.planned_sessions_size is None:
        extra = np.full(p.n_clients, round(extra_mean))
    else:
        size = p.planned_sessions_size
        extra = rng.negative_binomial(size, size / (size + extra_mean), p.n_clients)
    return np.minimum(1 + extra, p.max_sessions)


@dataclass
class _Population:
    """Therapist- and client-level draws (arrays indexed by therapist or client number)."""

    therapist_site: np.ndarray
    u: np.ndarray
    o: np.ndarray
    therapist: np.ndarray
    v: np.ndarray
    intake: np.ndarray
    start_day: np.ndarray
    feedback: np.ndarray
    gain: np.ndarray
    planned: np.ndarray
    covariates: dict[str, np.ndarray] = field(default_factory=dict)


def _covariates(p: SimulationParameters, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The clients' covariates (level indices) from their own stream, and their gain."""
    if not p.covariates:
        return {}, np.zeros(p.n_clients)
    rng = np.random.default_rng([seed, 19])
    codes = {
        "age_band": rng.choice(len(AGE_BANDS), size=p.n_clients, p=AGE_BAND_SHARES),
        "diagnosis": rng.choice(len(DIAGNOSES), size=p.n_clients, p=DIAGNOSIS_SHARES),
        "treatment": rng.integers(0, len(TREATMENTS), size=p.n_clients),
    }
    gain = (np.asarray(p.age_band_effects)[codes["age_band"]]
            + np.asarray(p.diagnosis_effects)[codes["diagnosis"]])  # fmt: skip
    return codes, gain


def _population(p: SimulationParameters, rng: np.random.Generator, seed: int) -> _Population:
    therapist_site = np.arange(p.n_therapists) % p.n_sites
    u = rng.normal(0.0, p.alliance_sd_therapist, p.n_therapists)
    o = rng.normal(0.0, p.outcome_sd_therapist, p.n_therapists)
    weights = rng.gamma(p.caseload_shape, 1.0, p.n_therapists)
    therapist = rng.choice(p.n_therapists, size=p.n_clients, p=weights / weights.sum())
    v = rng.normal(0.0, p.alliance_sd_client, p.n_clients)
    intake = p.intake_mean + rng.normal(0.0, p.intake_sd, p.n_clients)
    start, end = pd.Timestamp(p.start_date), pd.Timestamp(p.end_date)
    start_day = rng.integers(0, (end - start).days + 1, p.n_clients)
    if p.feedback == "client":
        feedback = rng.random(p.n_clients) < 0.5
    elif p.feedback == "therapist":
        chosen = rng.permutation(p.n_therapists) < p.n_therapists // 2
        feedback = chosen[therapist]
    elif p.feedback == "date":
        feedback = start_day >= (end - start).days // 2
    else:
        feedback = np.zeros(p.n_clients, dtype=bool)
    gain = (
        p.gain_mean
        + p.gain_intake_slope * (intake - p.intake_mean)
        + p.alliance_effect_between * u[therapist]
        + p.alliance_effect_within * v
        + o[therapist]
        + rng.normal(0.0, p.gain_sd_client, p.n_clients)
        + p.feedback_effect * feedback
    )
    planned = _planned_sessions(p, rng)
    covariates, covariate_gain = _covariates(p, seed)
    if covariates:
        moderated = covariates["treatment"] == 1
        gain = gain + covariate_gain + p.treatment_alliance_effect * v * moderated
    return _Population(therapist_site, u, o, therapist, v, intake, start_day, feedback, gain,
                       planned, covariates)  # fmt: skip


def simulate_study(
    params: SimulationParameters | None = None, *, seed: int, **changes: Any
) -> SimulatedStudy:
    """Simulate a study with known truth.

    Parameters
    ----------
    params : SimulationParameters, optional
        Parameters (defaults: :class:`SimulationParameters`).
    seed : int
        Seed of the random generator; the same seed and parameters give identical data.
    **changes
        Parameters to change, e.g. ``n_clients=1000, feedback="client"``.

    Returns
    -------
    SimulatedStudy

    Examples
    --------
    >>> study = simulate_study(n_clients=20, n_therapists=4, n_sites=2, seed=7)
    >>> study.sessions["client_id"].nunique()
    20
    >>> sorted(study.sessions["end_status"].unique())[:2]
    ['dropout', 'ongoing']
    """
    p = (params or SimulationParameters()).replace(**changes)
    rng = np.random.default_rng(seed)
    pop = _population(p, rng, seed)
    therapist, intake, feedback, gain, planned = (
        pop.therapist,
        pop.intake,
        pop.feedback,
        pop.gain,
        pop.planned,
    )
    n = p.n_clients
    start = pd.Timestamp(p.start_date)
    last_day = (pd.Timestamp(p.end_date) - start).days
    trait = p.alliance_mean + pop.u[therapist] + pop.v
    innovation_sd = p.alliance_sd_session * np.sqrt(1.0 - p.alliance_ar**2)
    dropout_logit = logit(p.dropout_base) + p.feedback_dropout * feedback

    active = np.ones(n, dtype=bool)
    status = np.full(n, "ongoing", dtype=object)
    attended = np.zeros(n, dtype=np.int64)
    day = pop.start_day.copy()
    e = np.zeros(n)
    state = np.zeros(n)
    persistent = np.zeros(n)
    outcome_shift = np.zeros(n)
    repair_drop = np.zeros(n)
    repair_step = np.full(n, p.repair_sessions)
    pending_bonus = np.zeros(n)
    columns: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("client", "session", "day", "alliance", "outcome", "state", "rupture", "repaired")
    }

    for t in range(1, p.max_sessions + 1):
        idx = np.flatnonzero(active)
        if t > 1:
            day[idx] += rng.choice(SESSION_GAPS_DAYS, size=idx.size, p=SESSION_GAP_PROBS)
            beyond = day[idx] > last_day
            active[idx[beyond]] = False  # still in treatment at the extraction date
            idx = idx[~beyond]
        if idx.size == 0:
            break
        m = idx.size
        if t == 1:
            e[idx] = rng.normal(0.0, p.alliance_sd_session, m)
        else:
            e[idx] = p.alliance_ar * e[idx] + rng.normal(0.0, innovation_sd, m)

        in_repair = repair_step[idx] < p.repair_sessions
        repair_step[idx] += in_repair
        finished = in_repair & (repair_step[idx] >= p.repair_sessions)
        outcome_shift[idx[finished]] += pending_bonus[idx[finished]]
        pending_bonus[idx[finished]] = 0.0
        rupture = (
            (t >= 2) & ~(repair_step[idx] < p.repair_sessions) & (rng.random(m) < p.rupture_rate)
        )
        drop = np.maximum(rng.normal(p.rupture_drop, p.rupture_drop_sd, m), 0.0)
        repaired = rupture & (rng.random(m) < p.repair_probability)
        repair_offset = repair_drop[idx] * np.maximum(
            0.0, 1.0 - repair_step[idx] / p.repair_sessions
        )
        offset = persistent[idx] + np.where(rupture, drop, repair_offset)

        intake_i = intake[idx]
        if t == 1:
            outcome = intake_i.copy()
        else:
            change = 1.0 - np.exp(-(t - 1) / p.change_sessions)
            outcome = (
                intake_i
                + gain[idx] * change
                + p.state_effect * state[idx]
                + outcome_shift[idx]
                + rng.normal(0.0, p.measurement_sd, m)
            )
        formation = p.alliance_growth * min(t - 1, p.formation_sessions - 1)
        alliance = (
            trait[idx]
            + formation
            + e[idx]
            - offset
            + p.improvement_to_alliance * (outcome - intake_i)
        )
        state[idx] = alliance - trait[idx] - formation

        # bookkeeping of ruptures for the following sessions
        ids_r = idx[repaired]
        repair_drop[ids_r] = drop[repaired]
        repair_step[ids_r] = 0
        pending_bonus[ids_r] = p.rupture_repaired_outcome
        unrepaired = rupture & ~repaired
        persistent[idx[unrepaired]] += p.unrepaired_persistence * drop[unrepaired]
        outcome_shift[idx[unrepaired]] += p.rupture_unrepaired_outcome

        for key, value in (
            ("client", idx),
            ("session", np.full(m, t)),
            ("day", day[idx]),
            ("alliance", alliance),
            ("outcome", outcome),
            ("state", state[idx]),
            ("rupture", rupture),
            ("repaired", repaired),
        ):
            columns[key].append(value)
        attended[idx] = t

        recorded = np.round(np.clip(alliance, 0.0, 40.0), 1)
        ends = t >= planned[idx]
        leaves = ~ends & (
            rng.random(m)
            < expit(dropout_logit[idx] + p.dropout_alliance * (recorded - p.alliance_mean))
        )
        status[idx[ends]] = "planned"
        status[idx[leaves]] = "dropout"
        active[idx[ends | leaves]] = False

    data = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.lexsort((data["session"], data["client"]))
    data = {k: v[order] for k, v in data.items()}
    return _assemble(p, seed, rng, data, pop, attended, status)


def padded_ids(prefix: str, n: int) -> np.ndarray:
    """``n`` IDs ``prefix`` + 1 … n, zero-padded to one width (``C001`` … ``C250``): the
    simulators' client and therapist IDs."""
    return np.array([f"{prefix}{i + 1:0{len(str(n))}d}" for i in range(n)])


def _assemble(
    p: SimulationParameters,
    seed: int,
    rng: np.random.Generator,
    data: dict[str, np.ndarray],
    pop: _Population,
    attended: np.ndarray,
    status: np.ndarray,
) -> SimulatedStudy:
    therapist, therapist_site, feedback = pop.therapist, pop.therapist_site, pop.feedback
    start = pd.Timestamp(p.start_date)
    n_rows = len(data["client"])
    client_ids, therapist_ids = padded_ids("C", p.n_clients), padded_ids("T", p.n_therapists)
    site_ids = np.array([f"S{s + 1}" for s in range(p.n_sites)])
    client = data["client"]
    outcome_inst, alliance_inst = get_instrument(p.outcome), get_instrument(p.alliance)
    outcome = rescale(data["outcome"], outcome_inst)
    alliance = rescale(data["alliance"], alliance_inst)
    outcome[rng.random(n_rows) < p.missing_outcome] = np.nan
    alliance[rng.random(n_rows) < p.missing_alliance] = np.nan

    sessions = pd.DataFrame(
        {
            "client_id": pd.Series(client_ids[client], dtype="str"),
            "therapist_id": pd.Series(therapist_ids[therapist[client]], dtype="str"),
            "site_id": pd.Series(site_ids[therapist_site[therapist[client]]], dtype="str"),
            "session": data["session"].astype(np.int64),
            "session_date": start + pd.to_timedelta(data["day"], unit="D"),
            "end_status": pd.Series(status[client], dtype="str"),
        }
    )
    if p.feedback != "none":
        sessions["condition"] = pd.Series(
            np.where(feedback[client], "feedback", "none"), dtype="str"
        )
    levels = {"age_band": AGE_BANDS, "diagnosis": DIAGNOSES, "treatment": TREATMENTS}
    for name, codes in pop.covariates.items():
        sessions[name] = pd.Series(np.asarray(levels[name])[codes[client]], dtype="str")
    sessions[outcome_inst.key] = outcome
    sessions[alliance_inst.key] = alliance
    latent = pd.DataFrame(
        {
            "alliance_latent": data["alliance"],
            "outcome_latent": data["outcome"],
            "alliance_state": data["state"],
            "rupture": data["rupture"],
            "rupture_repaired": data["repaired"],
        }
    )
    clients = pd.DataFrame(
        {
            "client_id": client_ids,
            "therapist_id": therapist_ids[therapist],
            "site_id": site_ids[therapist_site[therapist]],
            "feedback": feedback,
            "alliance_client": pop.v,
            "intake": pop.intake,
            "gain": pop.gain,
            "planned_sessions": pop.planned,
            "sessions_attended": attended,
            "end_status": status.astype(str),
            **{name: np.asarray(levels[name])[codes] for name, codes in pop.covariates.items()},
        }
    )
    therapists = pd.DataFrame(
        {
            "therapist_id": therapist_ids,
            "site_id": site_ids[therapist_site],
            "alliance_therapist": pop.u,
            "outcome_therapist": pop.o,
            "caseload": np.bincount(therapist, minlength=p.n_therapists),
        }
    )
    return SimulatedStudy(sessions, latent, clients, therapists, p, seed)


def with_items(sessions: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Replace instrument totals by item columns that sum to them (the loader sums them back).

    Examples
    --------
    >>> study = simulate_study(n_clients=10, n_therapists=2, n_sites=1, seed=3)
    >>> items = with_items(study.sessions, seed=3)
    >>> "srs" in items, "srs_relationship" in items
    (False, True)
    """
    rng = np.random.default_rng(seed)
    out = sessions.copy()
    for key in [c for c in sessions.columns if c in INSTRUMENTS and INSTRUMENTS[c].sums_items]:
        inst = get_instrument(key)
        values = split_items(sessions[key].to_numpy(dtype=float), inst, rng)
        position = out.columns.get_loc(key)
        out = out.drop(columns=key)
        for offset, column in enumerate(inst.item_columns):
            out.insert(position + offset, column, values[:, offset])
    return out


CLINIC_EXPORT_COLUMNS = {
    "client_id": "Client Code",
    "therapist_id": "Clinician",
    "site_id": "Service",
    "session": "Session No",
    "session_date": "Appointment Date",
    "end_status": "Discharge",
    "ors_individually": "ORS Individually",
    "ors_interpersonally": "ORS Interpersonally",
    "ors_socially": "ORS Socially",
    "ors_overall": "ORS Overall",
    "srs_relationship": "SRS Relationship",
    "srs_goals_and_topics": "SRS Goals and Topics",
    "srs_approach_or_method": "SRS Approach or Method",
    "srs_overall": "SRS Overall",
}
"""How :func:`write_clinic_export` names the columns (the mapping a config must undo)."""
CLINIC_DISCHARGE_LABELS = {"planned": "Completed", "dropout": "Did not return", "ongoing": "Open"}


def write_clinic_export(sessions: pd.DataFrame, path: str | Path, seed: int) -> None:
    """Write ORS/SRS sessions the way a clinic's system might export them.

    Item columns instead of totals, the clinic's own column names (:data:`CLINIC_EXPORT_COLUMNS`)
    and discharge labels, ``;`` as delimiter, decimal commas and day-first dates: the demo of a
    dataset that a config maps onto the contract (``config/two_datasets.yaml``).
    """
    export = with_items(sessions, seed)
    export["end_status"] = export["end_status"].map(CLINIC_DISCHARGE_LABELS)
    export = export.rename(columns=CLINIC_EXPORT_COLUMNS)
    export.to_csv(
        path,
        sep=";",
        decimal=",",
        index=False,
        date_format="%d/%m/%Y",
        float_format="%g",
        lineterminator="\n",
    )
