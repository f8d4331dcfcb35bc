# What exactly produced a dataset's results: versions, configuration, checksums, seed, time.


rule provenance:
    input:
        data=dataset_path,
        outputs=provenance_outputs,
    output:
        f"{P}/provenance.json",
    params:
        settings=dataset_settings,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/provenance.log",
    benchmark:
        f"{I}/logs/provenance.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/provenance.py"
