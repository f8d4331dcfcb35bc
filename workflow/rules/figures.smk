# Figures of one dataset, drawn from its derived tables and model tables.


rule figures:
    input:
        sessions="results/{dataset}/derived/sessions.parquet",
        clients="results/{dataset}/derived/clients.parquet",
        models="results/{dataset}/tables/models.csv",
        early_warning="results/{dataset}/tables/early_warning.csv",
        calibration="results/{dataset}/tables/dropout_calibration.csv",
        sequences="results/{dataset}/derived/rupture_sequences.parquet",
        curves="results/{dataset}/tables/expected_response_curves.csv",
    output:
        figure_outputs(),
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        seed=config["seed"],
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/figures.log",
    benchmark:
        "results/{dataset}/logs/figures.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/figures.py"
