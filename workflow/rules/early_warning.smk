# Early-warning analyses of one dataset (docs/models.md): ruptures and repair, dropout risk,
# the expected treatment response and its not-on-track signal, and feedback.


rule early_warning:
    input:
        "results/{dataset}/validated/sessions.parquet",
    output:
        table=report(
            "results/{dataset}/tables/early_warning.csv",
            caption="../report/early_warning.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "early warning (tidy)"},
        ),
        calibration="results/{dataset}/tables/dropout_calibration.csv",
        sequences="results/{dataset}/derived/rupture_sequences.parquet",
        curves="results/{dataset}/tables/expected_response_curves.csv",
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        settings=config["early_warning"],
        seed=config["seed"],
        engine=config["engine"],
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/early_warning.log",
    benchmark:
        "results/{dataset}/logs/early_warning.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/early_warning.py"
