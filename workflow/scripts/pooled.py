"""Rules pooled_sites and pooled_datasets: the pooled alliance-outcome correlation."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import pooled_step

by_site = snakemake.rule == "pooled_sites"
names = [snakemake.wildcards.dataset] if by_site else snakemake.params.datasets
clients = dict(zip(names, snakemake.input, strict=True))
context = f"dataset '{snakemake.wildcards.dataset}'" if by_site else "pooled datasets"
with workflow_step(snakemake, context):
    pooled_step(
        clients,
        snakemake.output.table,
        snakemake.output.figures,
        by_site=by_site,
        label="Sites" if by_site else "Datasets",
        alliance=snakemake.params.alliance,
    )
