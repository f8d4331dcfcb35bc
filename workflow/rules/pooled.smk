# Pooling the alliance-outcome correlation: across the sites of each dataset, and across the
# datasets (results/_pooled/, only when the config names two or more).


rule pooled_sites:
    input:
        clients="results/{dataset}/derived/clients.parquet",
    output:
        table="results/{dataset}/tables/pooled_sites.csv",
        figures=expand("results/{{dataset}}/figures/forest_sites.{ext}", ext=("png", "svg")),
    log:
        "results/{dataset}/logs/pooled_sites.log",
    script:
        "../scripts/pooled.py"


rule pooled_datasets:
    input:
        clients=expand("results/{dataset}/derived/clients.parquet", dataset=DATASETS),
    output:
        table="results/_pooled/tables/pooled_datasets.csv",
        figures=expand("results/_pooled/figures/forest_datasets.{ext}", ext=("png", "svg")),
    log:
        "results/_pooled/logs/pooled_datasets.log",
    script:
        "../scripts/pooled.py"
