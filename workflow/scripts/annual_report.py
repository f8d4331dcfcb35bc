"""Rule annual_report: per reporting year, the HTML and PDF report and the published KPIs."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import annual_report_step, report_settings

dataset = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{dataset}'"):
    annual_report_step(
        dict(zip(snakemake.params.names, snakemake.input.tables, strict=True)),
        snakemake.input.summary,
        snakemake.output[0],
        report_settings(dataset, snakemake.params.settings),
        snakemake.input.early_warning,
    )
