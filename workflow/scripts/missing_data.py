"""Rule missing_data: multiple imputation, tipping point and missingness of one dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import missing_data_step

with workflow_step(snakemake):
    missing_data_step(
        list(snakemake.input),
        imputed=snakemake.output.imputed,
        tipping=snakemake.output.tipping,
        pattern=snakemake.output.pattern,
        published_pattern=snakemake.output.published_pattern,
        options=snakemake.params.options,
        settings=snakemake.params.settings,
        suppress_below=snakemake.params.suppress_below,
    )
