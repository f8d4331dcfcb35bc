# The model catalogue: one job per model and dataset, then one table of all models.


rule model:
    input:
        clients="results/{dataset}/derived/clients.parquet",
        sessions="results/{dataset}/derived/sessions.parquet",
        pairs="results/{dataset}/derived/pairs.parquet",
        validated="results/{dataset}/validated/sessions.parquet",
    output:
        "results/{dataset}/tables/{model}.csv",
    params:
        options=model_options,
    log:
        "results/{dataset}/logs/model_{model}.log",
    benchmark:
        "results/{dataset}/logs/model_{model}.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/model.py"


rule models_table:
    input:
        expand("results/{{dataset}}/tables/{model}.csv", model=MODELS),
    output:
        "results/{dataset}/tables/models.csv",
    log:
        "results/{dataset}/logs/models_table.log",
    script:
        "../scripts/models_table.py"
