# Pooling the alliance-outcome correlation: across the sites of each dataset, and across the
# datasets (results/_pooled/, only when the config names two or more).


rule pooled_sites:
    input:
        clients="results/{dataset}/derived/clients.parquet",
    output:
        table=report(
            "results/{dataset}/tables/pooled_sites.csv",
            caption="../report/pooled_table.rst",
            category="{dataset}",
            subcategory="Pooled across sites",
            labels={"table": "pooled across sites"},
        ),
        figures=[
            report(
                "results/{dataset}/figures/forest_sites.png",
                caption="../report/forest_sites.rst",
                category="{dataset}",
                subcategory="Pooled across sites",
                labels={"figure": "forest plot"},
            ),
            "results/{dataset}/figures/forest_sites.svg",
        ],
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/pooled_sites.log",
    benchmark:
        "results/{dataset}/logs/pooled_sites.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/pooled.py"


rule pooled_datasets:
    input:
        clients=expand("results/{dataset}/derived/clients.parquet", dataset=DATASETS),
    output:
        table=report(
            "results/_pooled/tables/pooled_datasets.csv",
            caption="../report/pooled_table.rst",
            category="Pooled across datasets",
            labels={"table": "pooled across datasets"},
        ),
        figures=[
            report(
                "results/_pooled/figures/forest_datasets.png",
                caption="../report/forest_datasets.rst",
                category="Pooled across datasets",
                labels={"figure": "forest plot"},
            ),
            "results/_pooled/figures/forest_datasets.svg",
        ],
    conda:
        CONDA_ENV
    log:
        "results/_pooled/logs/pooled_datasets.log",
    benchmark:
        "results/_pooled/logs/pooled_datasets.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/pooled.py"
