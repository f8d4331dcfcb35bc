"""The lme4 formula language: parsing, the fixed-effects design, and the random-effect terms.

Every model of the package, the catalogue's and a researcher's own (``models:`` in the config),
is written in lme4 notation, ``response ~ fixed part + (random | group) …``, and read here with
R's semantics, so that a formula copied from an R script means the same model.

Fixed part
    Built by formulaic (Gräf et al.), whose model matrices equal R's ``model.matrix`` for the
    formulas below (tests/test_formula.py against R 4.2's, on public data):

    - numeric columns as they are; logical columns as 0/1, named ``xTRUE``;
    - text (and categorical) columns as factors with treatment contrasts, levels sorted (a
      pandas categorical keeps its own order, as an R factor does), the first level the
      reference; ``relevel(x, ref = "level")`` chooses another, ``factor(x)`` makes a numeric
      column a factor;
    - interactions ``a:b``, crossing ``a * b`` and ``(a + b + c)^2``; ``- 1`` or ``0 +`` for no
      intercept;
    - ``I(x^2)`` and arithmetic inside calls, ``log``, ``log2``, ``log10``, ``log1p``, ``exp``,
      ``sqrt``, ``abs``; ``poly(x, k)`` (orthogonal polynomials, as R's default);
      ``scale(x)`` and ``scale(x, scale = FALSE)`` (centring), ``center(x)``.

    Column names follow R's: ``SexMale``, ``SES:MEANSES``, ``I(SES^2)``, ``poly(SES, 2)1``;
    the intercept is ``Intercept``. One difference from R is known and documented: an
    interaction of two factors without their main effects (``a:b``) is coded at full rank by
    formulaic, where R writes a rank-deficient matrix that lme4 then trims; the fitted model is
    the same, the coefficients are parametrised differently. A column that is a linear
    combination of earlier ones is dropped, with a message naming it, as lme4 does.

Random part
    ``(1 | g)``; ``(x | g)`` = ``(1 + x | g)`` (correlated intercept and slopes); ``(0 + x |
    g)`` (slope only); ``(1 + x || g)`` = ``(1 | g) + (0 + x | g)`` (uncorrelated); ``(1 |
    g1/g2)`` = ``(1 | g1) + (1 | g1:g2)`` (nested); several terms, crossed or nested. Random
    slopes are numeric columns. Which algorithm fits a structure is the engine's business
    (:mod:`allianceanalysis.engine`).

Rows with a missing value in any variable of the formula are dropped (R's ``na.omit``) and
counted by the engine.

References
----------
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1-48 (section 2.1, the formula module).
Wilkinson, G. N., & Rogers, C. E. (1973). Symbolic description of factorial models for
analysis of variance. Applied Statistics, 22(3), 392-399.

Examples
--------
>>> f = Formula.parse("y ~ x * sex + (x || g)")
>>> f.fixed, [t.lme4() for t in f.random]
('x * sex', ['(1 | g)', '(0 + x | g)'])
>>> data = pd.DataFrame({"y": [1.0, 2, 3, 5], "x": [0.0, 1, 2, 3], "sex": list("FMFM"),
...                      "g": list("aabb")})
>>> design(f, data).terms
['Intercept', 'x', 'sexM', 'x:sexM']
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

__all__ = ["SUPPORTED", "Design", "Formula", "RandomTerm", "aliased_from_crossproducts", "design"]

SUPPORTED = (
    "in the fixed part numeric and text columns (factors), a*b, a:b, (a+b)^2, I(), log(), "
    "exp(), sqrt(), poly(), scale(), relevel(), factor(); in the random part (1 | g), "
    "(x | g), (0 + x | g), (x || g), (1 | g1/g2) and several such terms, slopes of numeric "
    "columns"
)
"""What the formula language accepts, for the messages that refuse a term."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_FUNCTIONS = {
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
"""Functions a formula may call besides formulaic's own (``I``, ``C``, ``poly``, ``scale``,
``center``), as R's base functions of the same names."""


def _unsupported(term: str, text: str, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return ValueError(
        f"unsupported term '{term}' in the formula {text!r}{reason}: supported are {SUPPORTED}"
    )


def _split(text: str, separator: str = "+") -> list[str]:
    """``text`` split at ``separator`` outside parentheses, each part stripped."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == separator and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(components | group)``.

    Attributes
    ----------
    group : tuple of str
        The grouping columns; two or more for an interaction ``g1:g2`` (a nested level).
    intercept : bool
        Whether the term has a random intercept.
    slopes : tuple of str
        Numeric columns with random slopes, correlated with each other and the intercept.
    """

    group: tuple[str, ...]
    intercept: bool = True
    slopes: tuple[str, ...] = ()

    def lme4(self) -> str:
        """The term in lme4 notation."""
        left = " + ".join(["1" if self.intercept else "0", *self.slopes])
        return f"({left} | {':'.join(self.group)})"

    @property
    def components(self) -> tuple[str, ...]:
        """The term's random effects in lme4's order: ``(Intercept)`` first, then slopes."""
        return (("(Intercept)",) if self.intercept else ()) + self.slopes


def _random_terms(term: str, text: str) -> list[RandomTerm]:
    """The random terms one parenthesised ``(left | right)`` or ``(left || right)`` stands for."""
    inside = term[1:-1]
    uncorrelated = "||" in inside
    left, _, right = inside.partition("||" if uncorrelated else "|")
    if "|" in right:
        raise _unsupported(term, text)
    parts = [p for p in _split(left.replace("-1", "+0").replace("- 1", "+ 0")) if p]
    intercept = "0" not in parts
    slopes = tuple(p for p in parts if p not in ("0", "1"))
    bad = [p for p in slopes if not _NAME.fullmatch(p)]
    levels = [g.strip() for g in right.split("/")]
    if bad or not parts or not all(_NAME.fullmatch(g) for lv in levels for g in lv.split(":")):
        raise _unsupported(term, text, "random slopes and groups are column names")
    groups = [tuple(g.strip() for g in levels[0].split(":"))]
    for level in levels[1:]:
        groups.append(groups[-1] + tuple(g.strip() for g in level.split(":")))
    if uncorrelated:
        pieces = [(True, ())] if intercept else []
        pieces += [(False, (s,)) for s in slopes]
    else:
        pieces = [(intercept, slopes)]
    return [RandomTerm(g, i, s) for g in groups for i, s in pieces]


@dataclass(frozen=True)
class Formula:
    """A parsed lme4 formula.

    Attributes
    ----------
    response : str
    fixed : str
        The fixed part's right-hand side as written (whitespace normalised); ``"1"`` for an
        intercept only.
    random : tuple of RandomTerm
        The random-effect terms, ``||`` and ``/`` expanded.
    """

    response: str
    fixed: str
    random: tuple[RandomTerm, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Formula:
        """Parse an lme4 formula; an unsupported term is refused with an error naming it.

        Raises
        ------
        ValueError
            Naming the unsupported term and what is supported.

        Examples
        --------
        >>> Formula.parse("Reaction ~ Days + (Days | Subject)").lme4()
        'Reaction ~ Days + (1 + Days | Subject)'
        >>> Formula.parse("strength ~ 1 + (1 | batch/cask)").lme4()
        'strength ~ 1 + (1 | batch) + (1 | batch:cask)'
        """
        response, tilde, rhs = text.partition("~")
        response = response.strip()
        if not tilde or not _NAME.fullmatch(response):
            raise _unsupported(response or "(no response)", text, "the response is a column")
        fixed: list[str] = []
        random: list[RandomTerm] = []
        for term in _split(rhs):
            if term.startswith("(") and term.endswith(")") and "|" in term:
                random.extend(_random_terms(" ".join(term.split()), text))
            elif "|" in term:
                raise _unsupported(term, text, "a random term is written (... | group)")
            elif not term:
                raise _unsupported(rhs.strip() or "(nothing)", text, "an empty term")
            else:
                fixed.append(" ".join(term.split()))
        parsed = cls(response, " + ".join(fixed) or "1", tuple(dict.fromkeys(random)))
        parsed._check_fixed(text)
        return parsed

    def _check_fixed(self, text: str) -> None:
        import formulaic
        from formulaic.errors import FormulaSyntaxError

        try:
            formulaic.Formula(_to_formulaic(self.fixed))
        except FormulaSyntaxError as error:
            raise _unsupported(self.fixed, text, str(error).splitlines()[0]) from None

    @property
    def plain_fixed(self) -> tuple[str, ...] | None:
        """The fixed part's columns when it is only column names (and ``1``), else None."""
        terms = _split(self.fixed)
        if all(_NAME.fullmatch(t) or t == "1" for t in terms):
            return tuple(t for t in terms if t != "1")
        return None

    @property
    def fixed_variables(self) -> tuple[str, ...]:
        """The data columns the fixed part uses: every name that is not a function, a named
        argument, a quoted level or a logical constant, in order of appearance.

        Examples
        --------
        >>> formula = Formula.parse("y ~ poly(x, degree = 2) + scale(z) + relevel(s, ref = 'a')")
        >>> formula.fixed_variables
        ('x', 'z', 's')
        """
        text = re.sub(r"(['\"]).*?\1", "", self.fixed)
        names = re.finditer(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)(?!\s*[(\w.])(?!\s*=[^=])", text)
        constants = {"TRUE", "FALSE", "True", "False", "T", "F"}
        return tuple(dict.fromkeys(m[1] for m in names if m[1] not in constants))

    @property
    def groups(self) -> tuple[str, ...]:
        """The grouping columns, in order of first appearance (outermost first)."""
        return tuple(dict.fromkeys(g for term in self.random for g in term.group))

    @property
    def slopes(self) -> tuple[str, ...]:
        """The columns with random slopes."""
        return tuple(dict.fromkeys(s for term in self.random for s in term.slopes))

    @property
    def variables(self) -> list[str]:
        """Every column the model uses."""
        return list(dict.fromkeys([self.response, *self.fixed_variables, *self.slopes,
                                   *self.groups]))  # fmt: skip

    def lme4(self) -> str:
        """The formula in lme4 notation (R's ``lm`` notation without a random effect)."""
        return " + ".join([f"{self.response} ~ {self.fixed}", *(t.lme4() for t in self.random)])

    def without(self, group: str) -> Formula:
        """The formula without the grouping factor ``group`` (and its random slopes).

        Examples
        --------
        >>> Formula.parse("y ~ a + (1 | t/c)").without("t").lme4()
        'y ~ a + (1 | c)'
        >>> Formula.parse("y ~ a + (1 | t)").without("t").lme4()
        'y ~ a'
        """
        kept = []
        for term in self.random:
            rest = tuple(g for g in term.group if g != group)
            if rest and rest != term.group:
                kept.append(replace(term, group=rest))
            elif rest:
                kept.append(term)
        return replace(self, random=tuple(dict.fromkeys(kept)))

    def with_fixed(self, fixed: str) -> Formula:
        """The same formula with another fixed part (the catalogue's covariates, moderators)."""
        return replace(self, fixed=" ".join(fixed.split()))


def _in_calls(text: str, substitute) -> str:
    """``text`` with ``substitute`` applied to the inside of every function call."""
    out, i = [], 0
    for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_.]*\(", text):
        if match.start() < i:
            continue
        depth, j = 1, match.end()
        while j < len(text) and depth:
            depth += (text[j] == "(") - (text[j] == ")")
            j += 1
        out += [text[i : match.end()], substitute(text[match.end() : j - 1]), ")"]
        i = j
    return "".join(out) + text[i:]


_RELEVEL = re.compile(r"relevel\(\s*(factor\(\s*)?([A-Za-z_][A-Za-z0-9_.]*)(?(1)\s*\))\s*,"
                      r"\s*(?:ref\s*=\s*)?(['\"])(.*?)\3\s*\)")  # fmt: skip
"""``relevel(x, ref = "b")``, also with ``factor(x)`` inside (as R needs for a text column)."""


def _relevel_name(match: re.Match) -> str:
    """R's name of a ``relevel()`` call, as R deparses it."""
    inner = f"factor({match[2]})" if match[1] else match[2]
    return f'relevel({inner}, ref = "{match[4]}")'


def _r_deparse(expression: str) -> str:
    """A formulaic factor expression as R deparses it: ``I(x ** 2)`` -> ``I(x^2)``,
    ``scale(x, scale=False)`` -> ``scale(x, scale = FALSE)``, quotes doubled."""
    expression = expression.replace(" ** ", "^").replace("**", "^").replace("'", '"')
    expression = re.sub(r"\bTrue\b", "TRUE", re.sub(r"\bFalse\b", "FALSE", expression))
    return re.sub(r"\s*(?<![<>=!])=(?!=)\s*", " = ", expression)


_FACTOR = re.compile(r"factor\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)")


def _to_formulaic(fixed: str) -> str:
    """R's fixed-part text in formulaic's dialect: arithmetic ``^`` and ``TRUE``/``FALSE``
    inside calls as Python's, ``relevel(x, ref = "b")`` and ``factor(x)`` as ``C()``."""

    def arithmetic(inside: str) -> str:
        inside = re.sub(r"\bTRUE\b", "True", re.sub(r"\bFALSE\b", "False", inside))
        return _in_calls(inside.replace("^", "**"), arithmetic)

    text = _RELEVEL.sub(lambda m: f"C({m[2]}, contr.treatment(base='{m[4]}'))", fixed)
    text = _FACTOR.sub(lambda m: f"C({m[1]})", text)
    return _in_calls(text, arithmetic)


@dataclass(frozen=True)
class Design:
    """The fixed-effects design of a formula on complete rows.

    Attributes
    ----------
    x : numpy.ndarray
        Rows × terms, float.
    terms : list of str
        Column names, R's (``Intercept`` for the intercept).
    dropped : tuple of str
        Columns dropped as linear combinations of earlier ones (lme4's rank check).
    """

    x: np.ndarray
    terms: list[str]
    dropped: tuple[str, ...] = ()


def _r_name(column: str, names: dict[str, str], logical: set[str]) -> str:
    """R's name of a formulaic column: ``Sex[T.Male]`` -> ``SexMale``, ``poly(x, 2)[1]`` ->
    ``poly(x, 2)1``, ``I(x ** 2)`` -> ``I(x^2)``, a logical ``b`` -> ``bTRUE``."""
    if column == "Intercept":
        return column
    parts = []
    for part in _split(column, ":"):
        match = re.fullmatch(r"(.*)\[(?:T\.)?(.*)\]", part)
        expression, level = (match[1], match[2]) if match else (part, "")
        if not level and expression in logical:
            level = "TRUE"
        parts.append(names.get(expression, _r_deparse(expression)) + level)
    return ":".join(parts)


def _clearly_full_rank(xtx: np.ndarray, norms: np.ndarray) -> bool:
    """Whether the Cholesky factor of the column-scaled X'X is far from singular (its
    diagonal above 1e-4): no column is aliased, and no finer test is needed."""
    if not np.all(norms > 0):
        return False
    try:
        factor = np.linalg.cholesky(xtx / np.outer(norms, norms))
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.diag(factor) > 1e-4))


def _aliased(x: np.ndarray, tolerance: float = 1e-7) -> list[int]:
    """Columns of ``x`` that are linear combinations of earlier ones: the diagonal of R in the
    QR decomposition of X, relative to the column's norm, below ``tolerance`` (lme4's rank
    tolerance).

    The Cholesky factor of the column-scaled X'X has the same diagonal, to about √ε: when all
    of it is far above the tolerance (the usual case) no column is aliased and the QR of the
    rows × terms matrix is not needed."""
    xtx = x.T @ x
    norms = np.sqrt(np.diag(xtx))
    if _clearly_full_rank(xtx, norms):
        return []
    diagonal = np.zeros(x.shape[1])  # with fewer rows than columns, the later ones are aliased
    r = np.linalg.qr(x, mode="r")
    diagonal[: min(r.shape)] = np.abs(np.diag(r))
    return [j for j in range(x.shape[1]) if norms[j] == 0 or diagonal[j] < tolerance * norms[j]]


def aliased_from_crossproducts(xtx: np.ndarray, tolerance: float = 1e-7) -> list[int]:
    """:func:`_aliased` from X'X alone (the sums of a model fitted from sufficient
    statistics): a column whose residual norm given the kept earlier columns (the diagonal
    of R, from the Schur complements of X'X) is below ``tolerance`` times its norm.

    Examples
    --------
    >>> x = np.column_stack([np.ones(4), [1.0, 2, 3, 4], [2.0, 4, 6, 8]])
    >>> aliased_from_crossproducts(x.T @ x)
    [2]
    """
    norms = np.sqrt(np.diag(xtx))
    if _clearly_full_rank(xtx, norms):
        return []
    kept: list[int] = []
    aliased = []
    for j in range(len(xtx)):
        residual = xtx[j, j]
        if kept:
            block = xtx[np.ix_(kept, kept)]
            cross = xtx[kept, j]
            residual -= float(cross @ np.linalg.solve(block, cross))
        if norms[j] == 0 or np.sqrt(max(residual, 0.0)) < tolerance * norms[j]:
            aliased.append(j)
        else:
            kept.append(j)
    return aliased


def design(formula: Formula, frame: pd.DataFrame, *, drop_aliased: bool = True) -> Design:
    """The fixed-effects model matrix of ``formula`` on ``frame`` (complete rows), as R's
    ``model.matrix``; columns that are combinations of earlier ones are dropped, named
    (unless ``drop_aliased`` is false: a fit from sums decides that from X'X).

    A fixed part of column names alone is stacked directly (no formula library on the
    catalogue's path); anything else goes through formulaic.

    Raises
    ------
    ValueError
        For a term that cannot be evaluated (an unknown function or column), or values that
        are not finite (``log`` of zero, say), naming the term.

    Examples
    --------
    >>> data = pd.DataFrame({"y": [1.0, 2, 3], "x": [1.0, 2, 4]})
    >>> design(Formula.parse("y ~ I(x^2)"), data).terms
    ['Intercept', 'I(x^2)']
    """
    plain = formula.plain_fixed
    if plain is not None and all(_plain_kind(frame[c]) for c in plain):
        # column names alone (and "1") always have an intercept: "0", "- 1" go through formulaic
        x, terms = _plain_design(plain, frame)
    else:
        x, terms = _formulaic_design(formula, frame)
    if not np.isfinite(x).all():
        bad = terms[int(np.flatnonzero(~np.isfinite(x).all(axis=0))[0])]
        count = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"the term '{bad}' of {formula.lme4()} is not finite in {count} rows")
    aliased = _aliased(x) if x.shape[1] and drop_aliased else []
    if aliased:
        keep = [j for j in range(x.shape[1]) if j not in aliased]
        return Design(x[:, keep], [terms[j] for j in keep], tuple(terms[j] for j in aliased))
    return Design(x, terms)


def _plain_kind(column: pd.Series) -> str | None:
    """``"number"`` or ``"text"`` for a column the plain path stacks directly (a number, or
    plain text: encoded as R's ``model.matrix`` encodes a character column); None for any
    other (logical, categorical: formulaic)."""
    if pd.api.types.is_bool_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    return "text" if pd.api.types.is_string_dtype(column) else None


def _plain_design(plain: tuple[str, ...], frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The model matrix of an intercept and column names alone: a number as it is, a text
    column as treatment indicators of its levels after the first (sorted, as formulaic sorts
    them; named ``<column><level>`` as R does)."""
    columns, terms = [np.ones(len(frame))], ["Intercept"]
    for name in plain:
        if _plain_kind(frame[name]) == "number":
            columns.append(frame[name].to_numpy(dtype=float))
            terms.append(name)
            continue
        codes, levels = pd.factorize(frame[name], sort=True)
        for j, level in enumerate(levels[1:], start=1):
            columns.append((codes == j).astype(float))
            terms.append(f"{name}{level}")
    return np.column_stack(columns), terms


CHUNK_ROWS = 50_000
"""Rows of the model matrix formulaic builds at a time, when the formula allows (no stateful
transform: ``scale``, ``center``, ``poly``, ``C``): formulaic holds every column as an array
before it stacks them, twice the matrix; by chunks, the matrix and one chunk's columns."""
_STATEFUL = re.compile(r"\b(scale|center|poly|C)\s*\(")


def _formulaic_design(formula: Formula, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    import formulaic
    from formulaic.errors import FactorEvaluationError

    translated = _to_formulaic(formula.fixed)
    names = {
        f"C({m[2]}, contr.treatment(base='{m[4]}'))": _relevel_name(m)
        for m in _RELEVEL.finditer(formula.fixed)
    }
    names |= {f"C({m[1]})": m[0] for m in _FACTOR.finditer(formula.fixed)}
    columns = [c for c in formula.fixed_variables if c in frame]
    chunked = len(frame) > CHUNK_ROWS and not _STATEFUL.search(translated)
    levels = {  # by chunks, a text column is encoded with all its levels, sorted as formulaic does
        c: sorted(frame[c].dropna().unique()) for c in columns if chunked
        and not pd.api.types.is_numeric_dtype(frame[c])
        and not isinstance(frame[c].dtype, pd.CategoricalDtype)
    }  # fmt: skip

    def rows(start: int, stop: int) -> pd.DataFrame:
        part = frame.iloc[start:stop] if chunked else frame
        return part.assign(**{c: pd.Categorical(part[c], categories=v)
                              for c, v in levels.items()})  # fmt: skip

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log(0): refused below, by name
            matrix = formulaic.model_matrix(translated, rows(0, CHUNK_ROWS), context=_FUNCTIONS,
                                            na_action="ignore", output="numpy")  # fmt: skip
            x = np.asarray(matrix, dtype=float)
            if chunked:
                out = np.empty((len(frame), x.shape[1]))
                out[:CHUNK_ROWS] = x
                for start in range(CHUNK_ROWS, len(frame), CHUNK_ROWS):
                    stop = min(start + CHUNK_ROWS, len(frame))
                    out[start:stop] = matrix.model_spec.get_model_matrix(
                        rows(start, stop), output="numpy", na_action="ignore",
                        context=_FUNCTIONS)  # fmt: skip
                x = out
    except FactorEvaluationError as error:
        term = re.search(r"factor `(.*?)`", str(error))
        raise ValueError(
            f"the term '{term[1] if term else formula.fixed}' of {formula.lme4()} cannot be "
            f"evaluated ({str(error).split('[', 1)[-1].rstrip('].')}): supported are {SUPPORTED}"
        ) from None
    logical = {c for c in columns if pd.api.types.is_bool_dtype(frame[c])}
    terms = [_r_name(str(c), names, logical) for c in matrix.model_spec.column_names]
    return x, terms
