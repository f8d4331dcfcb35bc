# Configuration and helpers shared by the rules. The configuration is checked against
# workflow/schemas/config.schema.yaml by the package (plain-words errors, defaults filled in).
from pathlib import Path

from snakemake.exceptions import WorkflowError

from allianceanalysis.config import ConfigError, dataset_entry, load_config, validate_config
from allianceanalysis.figures import FIGURES
from allianceanalysis.models import CATALOGUE

try:
    config.update(
        validate_config(config, ", ".join(map(str, workflow.configfiles)) or "--config")
        if config
        else load_config(Path(workflow.basedir) / "config" / "config.yaml")
    )
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration:\n{exc}") from None

DATASETS = list(config["datasets"])
MODELS = list(CATALOGUE)


wildcard_constraints:
    dataset="|".join(DATASETS),


def dataset_path(wildcards):
    """The dataset's session file (absolute or relative to the working directory)."""
    return config["datasets"][wildcards.dataset]["path"]


def dataset_spec(wildcards):
    """The dataset's configuration entry with its instruments resolved (a change reruns it)."""
    return dataset_entry(config, wildcards.dataset)


def dataset_instruments(wildcards):
    """The dataset's outcome and alliance instruments."""
    entry = dataset_entry(config, wildcards.dataset)
    return {"outcome": entry["outcome"], "alliance": entry["alliance"]}


def model_options(wildcards):
    """Everything a model job depends on besides its input files (a change reruns it)."""
    return {
        **dataset_instruments(wildcards),
        "bootstrap": config["bootstrap"],
        "seed": config["seed"],
        "engine": config["engine"],
    }


def dataset_settings(wildcards):
    """The global settings and the dataset's own entry (what its results depend on)."""
    settings = {key: value for key, value in config.items() if key != "datasets"}
    return {**settings, "dataset": dataset_entry(config, wildcards.dataset)}


def all_outputs():
    """Every file the workflow produces for every configured dataset (and the pooled
    analysis across datasets when there are two or more)."""
    pooled = ["results/_pooled/tables/pooled_datasets.csv"] if len(DATASETS) >= 2 else []
    return pooled + expand(
        [
            "results/{dataset}/validated/sessions.parquet",
            "results/{dataset}/validation/summary.json",
            "results/{dataset}/validation/row_accounting.csv",
            "results/{dataset}/validation/excluded_rows.csv",
            "results/{dataset}/derived/accounting.csv",
            "results/{dataset}/tables/models.csv",
            "results/{dataset}/figures/therapist_caterpillar.png",
            "results/{dataset}/tables/apa/alliance_outcome.html",
            "results/{dataset}/provenance.json",
            "results/{dataset}/tables/pooled_sites.csv",
        ],
        dataset=DATASETS,
    )
