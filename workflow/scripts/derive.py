"""Rule derive: the client table, session table and session pairs of one dataset."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import derive_step

name = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{name}'"):
    derive_step(
        snakemake.input.sessions,
        dict(snakemake.output.items()),
        early_session=snakemake.params.early_session,
        **snakemake.params.instruments,
    )
