"""Rule merge_missing_data: multiple imputation, tipping point and missingness of a sharded
dataset, from each early session's part."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import missing_data_merge_step

with workflow_step(snakemake):
    missing_data_merge_step(
        list(snakemake.input.parts),
        snakemake.input.pattern,
        imputed=snakemake.output.imputed,
        tipping=snakemake.output.tipping,
        pattern=snakemake.output.pattern,
        published_pattern=snakemake.output.published_pattern,
        suppress_below=snakemake.params.suppress_below,
    )
