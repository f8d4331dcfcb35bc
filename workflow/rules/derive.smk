# Client-level and session-level tables (docs/models.md, "Derived variables") and the
# accounting of the cases they keep and exclude.


rule derive:
    input:
        sessions=f"{I}/validated/sessions.parquet",
        key=PSEUDONYM_KEY,
    output:
        clients=f"{I}/derived/clients.parquet",
        sessions=f"{I}/derived/sessions.parquet",
        pairs=f"{I}/derived/pairs.parquet",
        accounting=f"{I}/derived/accounting.csv",
        codes=f"{I}/derived/therapist_codes.csv",
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        adjustment=dataset_adjustment,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/derive.log",
    benchmark:
        f"{I}/logs/derive.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/derive.py"
