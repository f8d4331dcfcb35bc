"""Rule report_tables: every reporting year's numbers of one dataset (internal tables)."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import report_settings, report_tables_step

dataset = snakemake.wildcards.dataset
with workflow_step(snakemake):
    report_tables_step(
        snakemake.input.sessions,
        dict(snakemake.output.items()),
        report_settings(dataset, snakemake.params.settings),
        snakemake.input.early_warning,
        snakemake.input.codes,
        snakemake.input.change,
        snakemake.input.change_table,
    )
