"""Rule report_tables: every reporting year's numbers of one dataset (internal tables)."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import report_settings, report_tables_step

dataset = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{dataset}'"):
    report_tables_step(
        snakemake.input.sessions,
        dict(snakemake.output.items()),
        report_settings(dataset, snakemake.params.settings),
        snakemake.input.early_warning,
    )
