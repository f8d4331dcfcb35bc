"""Rule ingest: validate one dataset and write its analysable sessions and validation files."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.config import DatasetSpec
from allianceanalysis.io import ingest

name = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{name}'"):
    ingest(
        DatasetSpec.from_mapping(name, snakemake.params.spec),
        sessions=snakemake.output.sessions,
        summary=snakemake.output.summary,
        accounting=snakemake.output.accounting,
        excluded=snakemake.output.excluded,
    )
