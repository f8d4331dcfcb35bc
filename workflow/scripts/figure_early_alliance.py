"""Rule figure_early_alliance: the early-alliance coefficient against k, with CIs."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import early_alliance_figure_step

with report_user_errors(snakemake.log[0]):
    early_alliance_figure_step(
        snakemake.input[0], list(snakemake.output), **snakemake.params.instruments
    )
