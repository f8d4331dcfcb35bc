# What exactly produced a dataset's results: versions, configuration, checksums, seed, time.


rule provenance:
    input:
        data=dataset_path,
        outputs=[
            "results/{dataset}/validated/sessions.parquet",
            "results/{dataset}/tables/models.csv",
        ],
    output:
        "results/{dataset}/provenance.json",
    params:
        settings=dataset_settings,
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/provenance.log",
    benchmark:
        "results/{dataset}/logs/provenance.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/provenance.py"
