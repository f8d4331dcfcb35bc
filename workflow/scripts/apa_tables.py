"""Rule apa_tables: every model table of one dataset in APA style."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import apa_tables_step

with report_user_errors(snakemake.log[0], context=f"dataset '{snakemake.wildcards.dataset}'"):
    apa_tables_step(snakemake.input[0], list(snakemake.output))
