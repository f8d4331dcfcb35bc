# A simulation study (power and bias of the between-therapist alliance effect): one job per
# batch of replicates, then one summary. Not part of `all`: ask for it,
#   snakemake --cores 2 results/_simulation/power.csv
# and on a cluster add --profile workflow/profiles/slurm (docs/cluster.md).


rule simulation_batch:
    output:
        "results/_simulation/batches/design{design}_batch{batch}.csv",
    params:
        study=config["simulation_study"],
        seed=config["seed"],
    wildcard_constraints:
        design="[0-9]+",
        batch="[0-9]+",
    conda:
        CONDA_ENV
    log:
        "results/_simulation/logs/design{design}_batch{batch}.log",
    benchmark:
        "results/_simulation/logs/design{design}_batch{batch}.benchmark.tsv"
    resources:
        mem_mb=1000,
    script:
        "../scripts/simulation.py"


rule simulation_study:
    input:
        simulation_batches(),
    output:
        power="results/_simulation/power.csv",
        replicates="results/_simulation/replicates.csv",
    params:
        study=config["simulation_study"],
    conda:
        CONDA_ENV
    log:
        "results/_simulation/logs/summary.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/simulation.py"
