# Client-level and session-level tables (docs/models.md, "Derived variables") and the
# accounting of the cases they keep and exclude.


rule derive:
    input:
        sessions="results/{dataset}/validated/sessions.parquet",
        key=PSEUDONYM_KEY,
    output:
        clients="results/{dataset}/derived/clients.parquet",
        sessions="results/{dataset}/derived/sessions.parquet",
        pairs="results/{dataset}/derived/pairs.parquet",
        accounting=report(
            "results/{dataset}/derived/accounting.csv",
            caption="../report/accounting.rst",
            category="{dataset}",
            subcategory="Data",
            labels={"table": "clients accounted for"},
        ),
        codes="results/{dataset}/derived/therapist_codes.csv",
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/derive.log",
    benchmark:
        "results/{dataset}/logs/derive.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/derive.py"
