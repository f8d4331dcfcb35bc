"""Rules simulation_batch and simulation_study: a simulation study, batch by batch."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import simulation_batch_step, simulation_summary_step

with workflow_step(snakemake, "simulation study"):
    if snakemake.rule == "simulation_batch":
        simulation_batch_step(
            snakemake.params.study,
            design=int(snakemake.wildcards.design),
            batch=int(snakemake.wildcards.batch),
            output=snakemake.output[0],
            seed=snakemake.params.seed,
        )
    else:
        simulation_summary_step(
            list(snakemake.input),
            snakemake.output.power,
            snakemake.output.replicates,
            alpha=snakemake.params.study["alpha"],
        )
