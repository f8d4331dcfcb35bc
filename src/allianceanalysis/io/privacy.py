"""The privacy guard: refuse datasets that look identifying.

Analyses need pseudonymous codes only. A column whose *name* says it holds names, addresses,
email addresses, phone numbers, dates of birth or national health/insurance numbers is refused,
and so is a text column whose *values* contain email addresses or phone numbers, or whose values
are mostly valid NHS numbers (10 digits with a correct modulus-11 check digit). Values found are
never echoed in messages. A dataset's ``allow_identifier_columns`` lists columns a user has
checked and knows to be harmless (a false positive such as ``"Scale name"``).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

__all__ = ["identifier_name_reason", "identifier_value_reasons", "nhs_number_valid"]

# fmt: off
_ORGANISATION_WORDS = {
    "site", "clinic", "service", "team", "organisation", "organization", "practice", "centre",
    "center", "instrument", "measure", "scale", "file", "programme", "program", "condition",
    "group", "therapy", "treatment", "trust", "region", "board", "questionnaire", "form",
}
_NAME_WORDS = {
    "name", "names", "surname", "forename", "forenames", "firstname", "lastname", "fullname",
    "givenname", "familyname", "initials",
}
# fmt: on
_SINGLE_WORD_RULES = (
    ({"address", "street", "postcode", "zipcode", "zip", "postal"}, "a postal address"),
    ({"email", "mail"}, "email addresses"),
    ({"phone", "telephone", "tel", "mobile", "cellphone", "fax"}, "phone numbers"),
    ({"dob", "birthdate", "birthday", "birth"}, "dates of birth"),
    (
        {"nhs", "ssn", "nino", "medicare", "medicaid", "passport", "mrn", "chi"},
        "national health, insurance or record numbers",
    ),
)
_WORD_PAIR_RULES = (
    (
        {
            ("national", "insurance"),
            ("social", "security"),
            ("insurance", "number"),
            ("health", "number"),
            ("medical", "record"),
            ("hospital", "number"),
        },
        "national health, insurance or record numbers",
    ),
)

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
"""An email address anywhere in a value."""
PHONE_PATTERN = (
    r"\(\d{2,5}\)\s?\d{3,4}[ .-]?\d{3,4}\b"
    r"|(?:\+\d{1,3}[ .-]?)?\b0?\d{2,5}[ .-]\d{3,4}[ .-]?\d{3,4}\b"
    r"|\b0\d{9,10}\b|\+\d{10,13}\b"
)
"""A phone number anywhere in a value: digit groups with separators (``07700 900123``,
``(020) 7946 0958``, ``555-123-4567``), or 10-11 digits starting with 0, or ``+`` and 10-13
digits."""
_NHS_SHAPE = r"^[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}$"
NHS_SHARE = 0.5
"""A column is taken to hold NHS numbers when at least this share of its distinct values are
valid NHS numbers (random 10-digit codes pass the check digit about 1 time in 11)."""


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def identifier_name_reason(name: str) -> str | None:
    """Why a column name suggests direct identifiers, or ``None``.

    Examples
    --------
    >>> identifier_name_reason("Client Surname")
    "people's names"
    >>> identifier_name_reason("DateOfBirth")
    'dates of birth'
    >>> identifier_name_reason("Site name") is None
    True
    >>> identifier_name_reason("session_date") is None
    True
    """
    tokens = _tokens(name)
    words = set(tokens)
    joined = "".join(tokens)
    if (words & _NAME_WORDS or joined in _NAME_WORDS) and not words & _ORGANISATION_WORDS:
        return "people's names"
    if "e" in words and "mail" in words:
        return "email addresses"
    pairs = set(itertools.pairwise(tokens))
    for vocabulary, reason in _SINGLE_WORD_RULES:
        if words & vocabulary or joined in vocabulary:
            if reason.startswith("national") and words & _ORGANISATION_WORDS:
                continue
            return reason
    for vocabulary, reason in _WORD_PAIR_RULES:
        if pairs & vocabulary:
            return reason
    if ("date", "of", "birth") in set(zip(tokens, tokens[1:], tokens[2:], strict=False)):
        return "dates of birth"
    return None


def nhs_number_valid(values: pd.Series) -> np.ndarray:
    """Whether each value is a valid NHS number (10 digits, modulus-11 check digit).

    The check: weights 10..2 on the first nine digits; ``11 - (sum mod 11)`` (11 -> 0) must
    equal the tenth digit, and 10 is never valid (NHS Digital, NHS Number check digit).

    Examples
    --------
    >>> nhs_number_valid(pd.Series(["943 476 5919", "9434765918", "C0001"])).tolist()
    [True, False, False]
    """
    text = values.astype("str")
    shaped = text.str.fullmatch(_NHS_SHAPE).fillna(False).to_numpy(dtype=bool)
    valid = np.zeros(len(text), dtype=bool)
    if not shaped.any():
        return valid
    digits_text = text[shaped].str.replace(r"[ -]", "", regex=True)
    packed = "".join(digits_text.tolist()).encode("ascii")
    digits = (np.frombuffer(packed, dtype=np.uint8).astype(np.int64) - ord("0")).reshape(-1, 10)
    check = 11 - (digits[:, :9] @ np.arange(10, 1, -1)) % 11
    check = np.where(check == 11, 0, check)
    valid[shaped] = (check != 10) & (check == digits[:, 9])
    return valid


def identifier_value_reasons(text: pd.Series, free_text: bool) -> list[tuple[str, pd.Series]]:
    """Identifying content in a text column: ``(reason, mask of rows)`` pairs.

    Parameters
    ----------
    text : pandas.Series
        The column as text (missing as NA).
    free_text : bool
        Also look for phone numbers (not done for ID columns, where long digit codes are
        normal).
    """
    present = text.dropna()
    if present.empty:
        return []
    distinct = pd.Series(present.unique(), dtype="str")
    findings = []
    emails = distinct[distinct.str.contains(EMAIL_PATTERN, regex=True).to_numpy(dtype=bool)]
    if len(emails):
        findings.append(("email addresses", text.isin(emails)))
    if free_text:
        phone_hit = distinct.str.contains(PHONE_PATTERN, regex=True).to_numpy(dtype=bool)
        if phone_hit.any():
            findings.append(("phone numbers", text.isin(distinct[phone_hit])))
    nhs = nhs_number_valid(distinct)
    if nhs.mean() >= NHS_SHARE:
        findings.append(("NHS numbers", text.isin(distinct[nhs])))
    return findings
