"""Rule apa_tables: every model table of one dataset in APA style."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import apa_tables_step

with workflow_step(snakemake):
    apa_tables_step(
        list(snakemake.input),
        list(snakemake.output),
        adjustment=snakemake.params.adjustment,
        custom=snakemake.params.custom,
    )
