"""Rule figures: every figure of one dataset."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import figures_step

with report_user_errors(snakemake.log[0], context=f"dataset '{snakemake.wildcards.dataset}'"):
    figures_step(
        dict(snakemake.input.items()),
        list(snakemake.output),
        early_session=snakemake.params.early_session,
        seed=snakemake.params.seed,
        **snakemake.params.instruments,
    )
