# The program evaluator's annual report of one dataset: first every reporting year's numbers as
# internal tables, then per year the HTML, PDF and published KPI table, built from those tables
# with disclosure control (docs/annual-report.md).


rule report_tables:
    input:
        sessions="results/{dataset}/validated/sessions.parquet",
        early_warning="results/{dataset}/tables/early_warning.csv",
        codes="results/{dataset}/derived/therapist_codes.csv",
    output:
        **report_table_outputs(),
    params:
        settings=report_options,
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/report_tables.log",
    benchmark:
        "results/{dataset}/logs/report_tables.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/report_tables.py"


rule annual_report:
    input:
        tables=list(report_table_outputs().values()),
        summary="results/{dataset}/validation/summary.json",
        early_warning="results/{dataset}/tables/early_warning.csv",
    output:
        directory("results/{dataset}/annual_report"),
    params:
        settings=report_options,
        names=list(report_table_outputs()),
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/annual_report.log",
    benchmark:
        "results/{dataset}/logs/annual_report.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/annual_report.py"
