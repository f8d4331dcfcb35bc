"""Rule annual_report: per reporting year, the published HTML and PDF report with its KPIs,
and the internal supervision report (therapists under their own IDs)."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import annual_report_step, report_settings

dataset = snakemake.wildcards.dataset
with workflow_step(snakemake):
    annual_report_step(
        dict(zip(snakemake.params.names, snakemake.input.tables, strict=True)),
        snakemake.input.summary,
        snakemake.output.published,
        report_settings(dataset, snakemake.params.settings),
        snakemake.input.early_warning,
        codes=snakemake.input.codes,
        supervision=snakemake.output.supervision,
        missing={
            name: snakemake.input[name] for name in ("models", "imputed", "tipping", "missingness")
        },
    )
