"""Rule derive_shard: the client table, session table and pairs of one shard."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import derive_shard_step

with workflow_step(snakemake):
    derive_shard_step(
        snakemake.input.sessions,
        dict(snakemake.output.items()),
        early_session=snakemake.params.early_session,
        adjustment=snakemake.params.adjustment,
        **snakemake.params.instruments,
    )
