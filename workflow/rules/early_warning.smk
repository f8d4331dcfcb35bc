# Early-warning analyses of one dataset (docs/models.md): ruptures and repair, dropout risk,
# the expected treatment response and its not-on-track signal, and feedback.


rule early_warning:
    input:
        validated_pieces(),
    output:
        table=f"{I}/tables/early_warning.csv",
        published=report(
            f"{P}/tables/early_warning.csv",
            caption="../report/early_warning.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "early warning (tidy)"},
        ),
        calibration=f"{I}/tables/dropout_calibration.csv",
        sequences=f"{I}/derived/rupture_sequences.parquet",
        curves=f"{P}/tables/expected_response_curves.csv",
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        settings=config["early_warning"],
        seed=config["seed"],
        engine=config["engine"],
        suppress_below=config["annual_report"]["suppress_below"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/early_warning.log",
    benchmark:
        f"{I}/logs/early_warning.benchmark.tsv"
    # the head of the longest chain (early warning, report_tables, annual_report: 1,520 s in
    # the second 10M run against the longest imputation's 785 s): started before the imputation
    priority: 20
    resources:
        mem_mb=2000,
    script:
        "../scripts/early_warning.py"
