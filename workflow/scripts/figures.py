"""Rule figures: every figure of one dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import figures_step

with workflow_step(snakemake):
    figures_step(
        dict(snakemake.input.items()),
        list(snakemake.output),
        early_session=snakemake.params.early_session,
        seed=snakemake.params.seed,
        **snakemake.params.instruments,
    )
