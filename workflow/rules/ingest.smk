# Read, map and validate each dataset; write the analysable sessions (Parquet) and the
# validation files (summary, row accounting, excluded rows).


rule ingest:
    input:
        data=dataset_path,
    output:
        sessions="results/{dataset}/validated/sessions.parquet",
        summary="results/{dataset}/validation/summary.json",
        accounting=report(
            "results/{dataset}/validation/row_accounting.csv",
            caption="../report/validation_summary.rst",
            category="{dataset}",
            subcategory="Data",
            labels={"table": "rows accounted for"},
        ),
        excluded="results/{dataset}/validation/excluded_rows.csv",
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/ingest.log",
    benchmark:
        "results/{dataset}/logs/ingest.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/ingest.py"
