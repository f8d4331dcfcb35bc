"""Rule impute: one early session's multiple imputation of a sharded dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import impute_step

with workflow_step(snakemake):
    impute_step(
        list(snakemake.input),
        early=int(snakemake.wildcards.early),
        rows=snakemake.output.rows,
        pattern=snakemake.output.pattern,
        options=snakemake.params.options,
        settings=snakemake.params.settings,
    )
