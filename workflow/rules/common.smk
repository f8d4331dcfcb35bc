# Configuration and helpers shared by the rules. The configuration is checked against
# workflow/schemas/config.schema.yaml by the package (plain-words errors, defaults filled in).
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

# The workflow runs the package from its own source tree (the same code an editable install
# uses), here and in every job, so a job's conda environment needs only the dependencies.
PACKAGE_SOURCE = str(Path(workflow.basedir) / "src")
sys.path.insert(0, PACKAGE_SOURCE)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_SOURCE, os.environ.get("PYTHONPATH")]))
)

from snakemake.exceptions import WorkflowError
from snakemake.io import report as report_item  # "report(" opening a line is Snakemake syntax

from allianceanalysis.config import ConfigError, dataset_entry, load_config, validate_config
from allianceanalysis.covariates import Adjustment
from allianceanalysis.custom_models import as_dicts, custom_models
from allianceanalysis.instruments import use_instruments
from allianceanalysis.figures import FIGURE_INPUTS, FIGURES
from allianceanalysis.missing_data import imputed_sessions
from allianceanalysis.models import CATALOGUE
from allianceanalysis.annual_report import ReportTables
from allianceanalysis.layout import POOLED, figure_file, internal, model_table, published
from allianceanalysis.pipeline import DERIVED_SHARD_FILES
from allianceanalysis.pseudonyms import load_key

try:
    config.update(
        validate_config(config, ", ".join(map(str, workflow.configfiles)) or "--config")
        if config
        else load_config(Path(workflow.basedir) / "config" / "config.yaml")
    )
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration:\n{exc}") from None
# The configuration's own instruments join the built-in ones, here and in every job
# (allianceanalysis.cli.workflow_step).
use_instruments(config["instruments"])

# The secret key of the pseudonymous codes: made on the first run, checked on every run; jobs
# read it from its file (never from the configuration or a parameter, which Snakemake records).
PSEUDONYM_KEY = config["pseudonym_key"]
try:
    load_key(PSEUDONYM_KEY, create=True)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

DATASETS = list(config["datasets"])
# With --use-conda, every rule runs in a conda environment made from the repository's
# environment.yml (relative to workflow/rules/; docs/cluster.md).
CONDA_ENV = "../../environment.yml"
MODELS = list(CATALOGUE)
# Every output is published or internal, and its path says which (allianceanalysis.layout):
# P and I are a dataset's two folders, for the rules' paths.
P, I = published("{dataset}"), internal("{dataset}")


wildcard_constraints:
    dataset="|".join(DATASETS),


def sharded(dataset):
    """The dataset's shard count (0: read and validated whole)."""
    return (config["datasets"][dataset].get("shards") or {}).get("count", 0)


def datasets_pattern(sharded_ones):
    """The dataset wildcard's pattern for the sharded datasets, or for the others (a pattern
    nothing matches when there are none)."""
    names = [d for d in DATASETS if bool(sharded(d)) == sharded_ones]
    return "|".join(map(re.escape, names)) or "(?!)"


def shard_files(*names):
    """An input function: each of the dataset's shards' files ``names``, shard by shard."""

    def files(wildcards):
        count = sharded(wildcards.dataset)
        return [f"{I}/shards/{k}/{name}".format(dataset=wildcards.dataset)
                for k in range(count) for name in names]  # fmt: skip

    return files


def derived_pieces(name):
    """An input function: a derived table's file, or each shard's for a sharded dataset."""

    def files(wildcards):
        if sharded(wildcards.dataset):
            return shard_files(f"derived/{name}")(wildcards)
        return f"{I}/derived/{name}".format(dataset=wildcards.dataset)

    return files


def validated_pieces():
    """An input function: the validated sessions' file, or each shard's (a sharded dataset's
    sessions are never put in one file)."""

    def files(wildcards):
        if sharded(wildcards.dataset):
            return shard_files("validated/sessions.parquet")(wildcards)
        return [f"{I}/validated/sessions.parquet".format(dataset=wildcards.dataset)]

    return files


def imputed_parts(wildcards):
    """An input function: each imputed early session's part of a sharded dataset's multiple
    imputation (allianceanalysis.missing_data.imputed_sessions)."""
    alliance = dataset_instruments(wildcards)["alliance"]
    sessions = imputed_sessions(config["early_session"], alliance)
    return [f"{I}/missing_data/k{k}.parquet".format(dataset=wildcards.dataset)
            for k in sessions]  # fmt: skip


def provenance_outputs(wildcards):
    """The outputs whose checksums the provenance record holds: the validated sessions (each
    shard's for a sharded dataset) and the models table."""
    models = f"{P}/tables/models.csv".format(dataset=wildcards.dataset)
    return [*validated_pieces()(wildcards), models]


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


def dataset_adjustment(wildcards):
    """The dataset's covariates and moderators, as plain data (a change reruns the jobs that
    use them: derive and models)."""
    return Adjustment.from_config(config, wildcards.dataset).as_dict()


def dataset_custom_models(wildcards):
    """The dataset's own models (models: in the config), as plain data."""
    return as_dicts(custom_models(config, wildcards.dataset))


def model_options(wildcards):
    """Everything a model job depends on besides its input files (a change reruns it)."""
    return {
        **dataset_instruments(wildcards),
        "adjustment": dataset_adjustment(wildcards),
        "custom": dataset_custom_models(wildcards),
        "early_session": config["early_session"],
        "riclpm_waves": config["riclpm_waves"],
        "bootstrap": config["bootstrap"],
        "seed": config["seed"],
        "engine": config["engine"],
    }


def dataset_settings(wildcards):
    """The global settings and the dataset's own entry (what its results depend on)."""
    settings = {key: value for key, value in config.items() if key != "datasets"}
    return {**settings, "dataset": dataset_entry(config, wildcards.dataset)}


def report_options(wildcards):
    """Everything a dataset's annual report depends on besides its input files."""
    return {
        **model_options(wildcards),
        "annual_report": config["annual_report"],
        "early_warning": config["early_warning"],
    }


def report_table_outputs():
    """The internal tables of the annual report, by name."""
    return {name: f"{I}/report_tables/{name}.csv" for name in ReportTables.names()}


def model_outputs():
    """Each catalogue model's table (published, or internal when therapist-level)."""
    return [model_table("{dataset}", name) for name in MODELS]


def figure_inputs():
    """The files the figures are drawn from (those some registry entry reads)."""
    used = {name for entry in FIGURES.values() for name in entry.inputs}
    return {
        name: derived_pieces("sessions.parquet")
        if name == "sessions"
        else f"results/{{dataset}}/{path}"
        for name, path in FIGURE_INPUTS.items()
        if name in used
    }


def figure_outputs():
    """Each figure as PNG and SVG (for papers); published PNGs are in the workflow report,
    with their captions."""
    outputs = []
    for name, entry in FIGURES.items():
        png = figure_file("{dataset}", name, ".png")
        if not entry.therapist_level:
            png = report_item(
                png,
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="Figures",
                labels={"figure": entry.title},
            )
        outputs += [png, figure_file("{dataset}", name, ".svg")]
    return outputs


def apa_outputs():
    """Each model table in APA style: HTML (published ones in the report), Markdown, LaTeX."""
    outputs = []
    for name in MODELS:
        html = model_table("{dataset}", name, ".html", apa=True)
        if not CATALOGUE[name].therapist_level:
            html = report_item(
                html,
                caption="../report/apa_table.rst",
                category="{dataset}",
                subcategory="Tables (APA style)",
                labels={"table": name},
            )
        outputs.append(html)
        outputs += [model_table("{dataset}", name, ext, apa=True) for ext in (".md", ".tex")]
    return outputs


def simulation_batches():
    """Every batch file of the simulation study: designs x ceil(replicates / batch_size)."""
    study = config["simulation_study"]
    batches = -(-study["replicates"] // study["batch_size"])
    return expand(
        "results/_simulation/batches/design{design}_batch{batch}.csv",
        design=range(len(study["designs"])),
        batch=range(batches),
    )


def all_outputs():
    """Every file the workflow produces for every configured dataset (and the pooled
    analysis across datasets when there are two or more)."""
    pooled = [published(POOLED, "tables", "pooled_datasets.csv")] if len(DATASETS) >= 2 else []
    validated = [
        path
        for dataset in DATASETS
        for path in validated_pieces()(SimpleNamespace(dataset=dataset))
    ]
    return pooled + validated + expand(
        [
            f"{I}/validation/summary.json",
            f"{I}/validation/row_accounting.csv",
            f"{I}/validation/excluded_rows.csv",
            f"{I}/derived/accounting.csv",
            f"{P}/tables/models.csv",
            f"{P}/tables/early_warning.csv",
            f"{P}/tables/clinical_significance.csv",
            f"{P}/tables/multiple_imputation.csv",
            f"{P}/tables/tipping_point.csv",
            f"{P}/tables/missingness.csv",
            *(figure_file("{dataset}", name, ext) for name in FIGURES for ext in (".png", ".svg")),
            model_table("{dataset}", "alliance_outcome", ".html", apa=True),
            f"{P}/provenance.json",
            f"{P}/tables/pooled_sites.csv",
            f"{P}/annual_report",
            f"{I}/supervision",
        ],
        dataset=DATASETS,
    )
