"""Rule derive: the client table, session table and session pairs of one dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import derive_step

with workflow_step(snakemake):
    derive_step(
        snakemake.input.sessions,
        dict(snakemake.output.items()),
        early_session=snakemake.params.early_session,
        key=snakemake.input.key,
        adjustment=snakemake.params.adjustment,
        **snakemake.params.instruments,
    )
