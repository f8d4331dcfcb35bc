# The model catalogue: all models of a dataset in one job (each is quick; one process saves
# the start-up of many), every table separately and together.


rule models:
    input:
        clients="results/{dataset}/derived/clients.parquet",
        sessions="results/{dataset}/derived/sessions.parquet",
        pairs="results/{dataset}/derived/pairs.parquet",
        validated="results/{dataset}/validated/sessions.parquet",
        codes="results/{dataset}/derived/therapist_codes.csv",
    output:
        tables=expand("results/{{dataset}}/tables/{model}.csv", model=MODELS),
        combined=report(
            "results/{dataset}/tables/models.csv",
            caption="../report/models_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "all models (tidy)"},
        ),
    params:
        options=model_options,
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/models.log",
    benchmark:
        "results/{dataset}/logs/models.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/models.py"
