"""Rule clinical_significance: reliable change and categories of change of one dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import clinical_significance_step

with workflow_step(snakemake):
    clinical_significance_step(
        list(snakemake.input),
        cases=snakemake.output.cases,
        table=snakemake.output.table,
        published=snakemake.output.published,
        outcome=snakemake.params.outcome,
        settings=snakemake.params.settings,
        suppress_below=snakemake.params.suppress_below,
    )
