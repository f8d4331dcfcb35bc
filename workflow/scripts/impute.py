"""Rule impute: one early session's multiple imputation of one dataset (or every one's)."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import impute_step

with workflow_step(snakemake):
    impute_step(
        list(snakemake.input),
        early=None if snakemake.wildcards.part == "all" else int(snakemake.wildcards.part[1:]),
        rows=snakemake.output.rows,
        pattern=snakemake.output.pattern,
        options=snakemake.params.options,
        settings=snakemake.params.settings,
    )
