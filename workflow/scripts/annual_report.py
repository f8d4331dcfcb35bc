"""Rule annual_report: per reporting year, the HTML and PDF report and the published KPIs."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import annual_report_step, report_settings

dataset = snakemake.wildcards.dataset
with workflow_step(snakemake):
    annual_report_step(
        dict(zip(snakemake.params.names, snakemake.input.tables, strict=True)),
        snakemake.input.summary,
        snakemake.output[0],
        report_settings(dataset, snakemake.params.settings),
        snakemake.input.early_warning,
    )
