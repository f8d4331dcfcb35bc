# Read, map and validate each dataset; write the analysable sessions (Parquet) and the
# validation files (summary, row accounting, excluded rows).


rule ingest:
    input:
        data=dataset_path,
    output:
        sessions=f"{I}/validated/sessions.parquet",
        summary=f"{I}/validation/summary.json",
        accounting=f"{I}/validation/row_accounting.csv",
        excluded=f"{I}/validation/excluded_rows.csv",
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/ingest.log",
    benchmark:
        f"{I}/logs/ingest.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/ingest.py"
