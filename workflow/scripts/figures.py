"""Rule figures: every figure of one dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import figures_step

with workflow_step(snakemake):
    figures_step(
        {name: path for name, path in snakemake.input.items() if name != "key"},
        list(snakemake.output),
        early_session=snakemake.params.early_session,
        key=snakemake.input.key,
        **snakemake.params.instruments,
    )
