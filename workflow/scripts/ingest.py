"""Rule ingest: validate one dataset and write its analysable sessions and validation files."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.config import DatasetSpec
from allianceanalysis.io import ingest

name = snakemake.wildcards.dataset
with workflow_step(snakemake):
    ingest(
        DatasetSpec.from_mapping(name, snakemake.params.spec),
        sessions=snakemake.output.sessions,
        summary=snakemake.output.summary,
        accounting=snakemake.output.accounting,
        excluded=snakemake.output.excluded,
    )
