"""Rule early_warning: the early-warning analyses of one dataset as one tidy table."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import early_warning_step

with workflow_step(snakemake):
    early_warning_step(
        list(snakemake.input),
        table=snakemake.output.table,
        published=snakemake.output.published,
        suppress_below=snakemake.params.suppress_below,
        calibration=snakemake.output.calibration,
        sequences=snakemake.output.sequences,
        curves=snakemake.output.curves,
        **snakemake.params.instruments,
        early_session=snakemake.params.early_session,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        engine=snakemake.params.engine,
    )
