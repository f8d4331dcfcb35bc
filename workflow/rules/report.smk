# The program evaluator's annual report of one dataset: first every reporting year's numbers as
# internal tables, then per year the HTML, PDF and published KPI table, built from those tables
# with disclosure control, and (same job) the internal supervision report (docs/annual-report.md).


rule report_tables:
    input:
        sessions=validated_pieces(),
        early_warning=f"{I}/tables/early_warning.csv",
        codes=f"{I}/derived/therapist_codes.csv",
        change=f"{I}/derived/clinical_significance.parquet",
        change_table=f"{I}/tables/clinical_significance.csv",
    output:
        **report_table_outputs(),
    params:
        settings=report_options,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/report_tables.log",
    benchmark:
        f"{I}/logs/report_tables.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/report_tables.py"


rule annual_report:
    input:
        tables=list(report_table_outputs().values()),
        summary=f"{I}/validation/summary.json",
        early_warning=f"{I}/tables/early_warning.csv",
        codes=f"{I}/derived/therapist_codes.csv",
        models=f"{P}/tables/models.csv",
        imputed=f"{P}/tables/multiple_imputation.csv",
        tipping=f"{P}/tables/tipping_point.csv",
        missingness=f"{P}/tables/missingness.csv",
    output:
        published=directory(f"{P}/annual_report"),
        supervision=directory(f"{I}/supervision"),
    params:
        settings=report_options,
        names=list(report_table_outputs()),
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/annual_report.log",
    benchmark:
        f"{I}/logs/annual_report.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/annual_report.py"
