"""Clinical significance against R, against the clinicalsignificance package's published
results, and on hand-built cases at every boundary.

R reference: ``tests/reference/clinical_significance_reference.R`` computes every index,
cut-off and category from the published formulas on two public data sets
(``tests/reference/data/README.md``); this module must equal it to 1e-10 (relative, indices and
cut-offs; exactly, categories). Published results: the package's vignettes report, for the
BDI-II of Claus et al. (2020) from session 1 to 4 with reliability .801 and functional norms
M 7.69, SD 7.52 (40 cases), 18 reliably improved by the JT index and 25 by HA; with cut-off a
(19.16) 10 recovered, 8 improved, 22 unchanged; cut-off c is 21.02.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.clinical_significance import (
    CATEGORIES,
    METHODS,
    ChangeReference,
    category_summary,
    clinical_significance,
    cutoff_value,
    pre_post,
    reliable_change_index,
)
from allianceanalysis.errors import NotEstimable
from allianceanalysis.instruments import Norms, define_instrument, get_instrument

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
BDI = define_instrument("bdi", {
    "name": "BDI-II", "construct": "outcome", "items": 21, "item_range": [0, 3],
    "higher_is_better": False, "reliability": 0.801, "reliability_kind": "internal_consistency",
    "norms": {"functional": {"mean": 7.69, "sd": 7.52}}, "source": "Claus et al. (2025)",
})  # fmt: skip
DAS = define_instrument("das", {
    "name": "Dyadic Adjustment Scale", "construct": "outcome", "total_range": [0, 151],
    "higher_is_better": True, "reliability": 0.96, "reliability_kind": "internal_consistency",
    "norms": {"functional": {"mean": 114.8, "sd": 17.8}}, "source": "illustrative"})  # fmt: skip


def claus_pairs() -> pd.DataFrame:
    claus = pd.read_csv(REFERENCE / "data" / "claus_2020.csv").rename(
        columns={"id": "client_id", "time": "session"}
    )
    return pre_post(claus, "bdi", pre=1, post=4).dropna(subset=["post"])


def jacobson_pairs() -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / "data" / "jacobson_1989.csv")
    wide = data.pivot(index="subject", columns="time", values="das")
    return pd.DataFrame({"client_id": wide.index, "pre": wide["pre"], "post": wide["post"]})


DATASETS = {"claus_2020_bdi": (claus_pairs, BDI), "jacobson_1989_das": (jacobson_pairs, DAS)}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "clinical_significance_cases.csv")


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cutoff", ["a", "b", "c"])
def test_indices_and_categories_equal_r(
    reference: pd.DataFrame, dataset: str, method: str, cutoff: str
) -> None:
    pairs, inst = DATASETS[dataset]
    result = clinical_significance(pairs(), inst, method=method, cutoff=cutoff).cases
    expected = reference.query("dataset == @dataset and method == @method "
                               "and cutoff_type == @cutoff")  # fmt: skip
    mine = result.sort_values("client_id").reset_index(drop=True)
    theirs = expected.sort_values("id").reset_index(drop=True)
    np.testing.assert_allclose(mine["rci"], theirs["rci"], rtol=1e-10)
    assert mine["category"].astype(str).tolist() == theirs["category"].tolist()


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", ["jt", "ha"])
@pytest.mark.parametrize("cutoff", ["a", "b", "c"])
def test_cutoffs_equal_r(dataset: str, method: str, cutoff: str) -> None:
    expected = (
        pd.read_csv(REFERENCE / "clinical_significance_cutoffs.csv")
        .query("dataset == @dataset and method == @method and cutoff_type == @cutoff")["cutoff"]
        .item()
    )
    pairs, inst = DATASETS[dataset]
    result = clinical_significance(pairs(), inst, method=method, cutoff=cutoff)
    assert result.parameters["cutoff_value"] == pytest.approx(expected, rel=1e-10)


def counts(method: str, cutoff: str) -> dict[str, int]:
    cases = clinical_significance(claus_pairs(), BDI, method=method, cutoff=cutoff).cases
    return cases["category"].value_counts().to_dict()


def test_published_jt_example_reliable_improvement() -> None:
    found = counts("jt", "a")
    assert found["recovered"] + found["improved"] == 18 and found["unchanged"] == 22


def test_published_combined_example_with_cutoff_a() -> None:
    found = counts("jt", "a")
    assert (found["recovered"], found["improved"], found["unchanged"]) == (10, 8, 22)
    assert found["deteriorated"] == found["harmed"] == 0


def test_published_ha_example_reliable_improvement() -> None:
    found = counts("ha", "a")
    assert found["recovered"] + found["improved"] == 25


def test_published_cutoffs_a_and_c() -> None:
    pairs = claus_pairs()
    assert len(pairs) == 40
    clinical = Norms(pairs["pre"].mean(), pairs["pre"].std())
    functional = Norms(7.69, 7.52)
    assert round(cutoff_value("a", clinical, functional, False), 2) == 19.16
    assert round(cutoff_value("c", clinical, functional, False), 2) == 21.02


def test_cutoff_b_uses_the_functional_sd() -> None:
    clinical, functional = Norms(30.0, 8.0), Norms(10.0, 5.0)
    assert cutoff_value("b", clinical, functional, higher_is_better=False) == 20.0
    assert cutoff_value("b", clinical, functional, higher_is_better=True) == 0.0


# Hand-built boundaries: r = 0.75, pre SD 10 -> S_diff = sqrt(2) * 10 * 0.5 = 7.0711, and a
# change of 1.96 S_diff = 13.86 points is the smallest reliable one.
S_DIFF = np.sqrt(2.0) * 10 * 0.5
REF = ChangeReference(0.75, 25.0, 10.0, 20.0, 10.0, 0.5)


def test_jt_index_is_the_change_over_s_diff() -> None:
    rci, se = reliable_change_index(np.array([30.0]), np.array([20.0]), "jt", REF)
    assert se[0] == pytest.approx(S_DIFF) and rci[0] == pytest.approx(-10 / S_DIFF)


def test_a_change_just_beyond_the_critical_value_is_reliable() -> None:
    change = 1.96 * S_DIFF
    below, _ = reliable_change_index(np.array([30.0]), np.array([30 - change * 0.999]), "jt", REF)
    above, _ = reliable_change_index(np.array([30.0]), np.array([30 - change * 1.001]), "jt", REF)
    assert abs(below[0]) < 1.96 < abs(above[0])


def cases_at(pre: list[float], post: list[float], cutoff: str = "published",
             higher: bool = False) -> list[str]:  # fmt: skip
    """Categories of the first cases; the sample is padded so its pre SD is large and fixed."""
    inst = define_instrument("x", {
        "name": "x", "construct": "outcome", "total_range": [-1000, 1000],
        "higher_is_better": higher, "reliability": 0.99, "reliability_kind": "test_retest",
        "cutoff": 20, "norms": {"functional": {"mean": 0, "sd": 1}},
        "source": "s"})  # fmt: skip
    pad_pre, pad_post = [-100.0, 100.0], [-100.0, 100.0]
    pairs = pd.DataFrame({"pre": pre + pad_pre, "post": post + pad_post})
    result = clinical_significance(pairs, inst, cutoff=cutoff)
    return result.cases["category"].astype(str).tolist()[: len(pre)]


def test_the_five_categories_on_a_lower_is_better_scale() -> None:
    # pre SD ~ 81.6, r = .99: S_diff ~ 11.5, reliable beyond ~22.6 points; clinical at >= 20
    found = cases_at([60.0, 60.0, 30.0, 30.0, 10.0], [10.0, 35.0, 25.0, 90.0, 50.0])
    assert found == ["recovered", "improved", "unchanged", "deteriorated", "harmed"]


def test_a_published_cutoff_keeps_its_rule_at_the_boundary() -> None:
    # at_or_above 20 is clinical (lower is better): ending at 20 is not recovery
    assert cases_at([60.0], [20.0]) == ["improved"]
    assert cases_at([60.0], [19.9]) == ["recovered"]


def test_a_score_at_a_computed_cutoff_is_in_neither_range() -> None:
    inst = define_instrument("y", {
        "name": "y", "construct": "outcome", "total_range": [-1000, 1000],
        "higher_is_better": False, "reliability": 0.99, "reliability_kind": "test_retest",
        "norms": {"functional": {"mean": 0, "sd": 1}}, "source": "s"})  # fmt: skip
    pairs = pd.DataFrame({"pre": [60.0, -100, 100], "post": [10.0, -100, 100]})
    at_cut = cutoff_value("a", Norms(pairs["pre"].mean(), pairs["pre"].std()), None, False)
    pairs.loc[0, "post"] = at_cut
    result = clinical_significance(pairs, inst, cutoff="a").cases
    assert not result["functional_post"].iloc[0] and result["category"].iloc[0] == "improved"


def test_harmed_needs_a_reliable_move_into_the_clinical_range() -> None:
    # starts functional (10 < 20), ends clinical (50) and reliably worse: harmed;
    # starts clinical (30) and worse: deteriorated
    assert cases_at([10.0, 30.0], [50.0, 90.0]) == ["harmed", "deteriorated"]


def test_higher_is_better_mirrors_the_categories() -> None:
    found = cases_at([-20.0, -20.0], [30.0, 10.0], higher=True)
    assert found == ["recovered", "improved"]


def test_norms_as_reference_use_the_clinical_mean_and_sd() -> None:
    inst = get_instrument("bdi2")
    pairs = pd.DataFrame({"pre": [30.0, 25, 35, 20], "post": [10.0, 24, 33, 30]})
    result = clinical_significance(pairs, inst, reference="norms", method="gln")
    assert result.parameters["sd_pre"] == 12.75 and result.parameters["m_pre"] == 22.45


def test_without_reliability_the_analysis_says_why() -> None:
    pairs = pd.DataFrame({"pre": [30.0, 25, 35], "post": [10.0, 24, 33]})
    with pytest.raises(NotEstimable, match="no reliability is on record for PHQ-9"):
        clinical_significance(pairs, get_instrument("phq9"))


def test_cutoff_c_without_functional_norms_says_why() -> None:
    pairs = pd.DataFrame({"pre": [30.0, 25, 35], "post": [10.0, 24, 33]})
    with pytest.raises(NotEstimable, match="needs the norms of a functional sample"):
        clinical_significance(pairs, get_instrument("phq9"), reliability=0.85, cutoff="c")


def test_too_few_pairs_say_why() -> None:
    pairs = pd.DataFrame({"pre": [30.0, 25], "post": [10.0, None]})
    with pytest.raises(NotEstimable, match="1 cases have a pre and a post score"):
        clinical_significance(pairs, BDI)


def test_default_cutoff_is_c_with_functional_norms_else_published() -> None:
    pairs = pd.DataFrame({"pre": [30.0, 25, 35, 22], "post": [10.0, 24, 33, 21]})
    assert clinical_significance(pairs, BDI).parameters["cutoff"] == "c"
    phq = clinical_significance(pairs.clip(upper=27), get_instrument("phq9"), reliability=0.89)
    assert phq.parameters["cutoff"] == "published"


def test_summary_shares_add_to_one_with_wilson_intervals() -> None:
    summary = category_summary(clinical_significance(claus_pairs(), BDI, cutoff="a"))
    assert summary["term"].tolist() == list(CATEGORIES)
    assert summary["estimate"].sum() == pytest.approx(1.0)
    recovered = summary.set_index("term").loc["recovered"]
    # statsmodels' proportion_confint(10, 40, method="wilson")
    expected = (0.14187118639096305, 0.4019396142076803)
    assert (recovered["ci_low"], recovered["ci_high"]) == pytest.approx(expected, rel=1e-12)


def test_clustering_widens_the_interval_when_therapists_differ() -> None:
    cases = pd.DataFrame({"pre": np.r_[np.full(20, 40.0), np.full(20, 40.0)],
                          "post": np.r_[np.full(20, 5.0), np.full(20, 39.0)]})  # fmt: skip
    cases["therapist_id"] = np.repeat(["t1", "t2", "t3", "t4"], 10)
    cases.loc[:4, "pre"] = 30.0  # some spread in pre scores
    result = clinical_significance(cases, BDI, cutoff="c")
    plain = category_summary(result).set_index("term").loc["recovered"]
    clustered = category_summary(result, by="therapist_id").set_index("term").loc["recovered"]
    assert clustered["ci_high"] - clustered["ci_low"] > 1.5 * (plain["ci_high"] - plain["ci_low"])
    assert clustered["n_groups"] == 4 and "clustered by therapist_id" in clustered["ci_method"]


def test_pre_and_post_at_given_sessions() -> None:
    s = pd.DataFrame({"client_id": ["a"] * 4, "session": [1, 2, 3, 4],
                      "bdi": [30.0, 25.0, 20.0, 12.0]})  # fmt: skip
    chosen = pre_post(s, "bdi", pre=2, post=4).iloc[0]
    assert (chosen["pre"], chosen["post"]) == (25.0, 12.0)


def test_post_window_takes_the_last_rating_inside_it() -> None:
    s = pd.DataFrame({"client_id": ["a"] * 5, "session": [1, 2, 3, 4, 5],
                      "bdi": [30.0, 25.0, None, 18.0, 12.0]})  # fmt: skip
    chosen = pre_post(s, "bdi", post=[2, 4]).iloc[0]
    assert (chosen["post_session"], chosen["post"]) == (4.0, 18.0)


def test_a_case_with_one_rating_has_no_post_score() -> None:
    s = pd.DataFrame({"client_id": ["a", "b", "b"], "session": [1, 1, 2],
                      "bdi": [30.0, 20.0, 10.0]})  # fmt: skip
    assert pre_post(s, "bdi")["post"].isna().tolist() == [True, False]
