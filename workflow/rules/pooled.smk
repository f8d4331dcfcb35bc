# Pooling the alliance-outcome correlation: across the sites of each dataset, and across the
# datasets (results/_pooled/, only when the config names two or more).


rule pooled_sites:
    input:
        clients=f"{I}/derived/clients.parquet",
    output:
        table=report(
            f"{P}/tables/pooled_sites.csv",
            caption="../report/pooled_table.rst",
            category="{dataset}",
            subcategory="Pooled across sites",
            labels={"table": "pooled across sites"},
        ),
        figures=[
            report(
                f"{P}/figures/forest_sites.png",
                caption="../report/forest_sites.rst",
                category="{dataset}",
                subcategory="Pooled across sites",
                labels={"figure": "forest plot"},
            ),
            f"{P}/figures/forest_sites.svg",
        ],
    params:
        alliance=lambda wildcards: {wildcards.dataset: dataset_instruments(wildcards)["alliance"]},
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/pooled_sites.log",
    benchmark:
        f"{I}/logs/pooled_sites.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/pooled.py"


rule pooled_datasets:
    input:
        clients=expand(f"{I}/derived/clients.parquet", dataset=DATASETS),
    output:
        table=report(
            published(POOLED, "tables", "pooled_datasets.csv"),
            caption="../report/pooled_table.rst",
            category="Pooled across datasets",
            labels={"table": "pooled across datasets"},
        ),
        figures=[
            report(
                published(POOLED, "figures", "forest_datasets.png"),
                caption="../report/forest_datasets.rst",
                category="Pooled across datasets",
                labels={"figure": "forest plot"},
            ),
            published(POOLED, "figures", "forest_datasets.svg"),
        ],
    params:
        datasets=DATASETS,
        alliance={name: dataset_entry(config, name)["alliance"] for name in DATASETS},
    conda:
        CONDA_ENV
    log:
        internal(POOLED, "logs", "pooled_datasets.log"),
    benchmark:
        internal(POOLED, "logs", "pooled_datasets.benchmark.tsv")
    resources:
        mem_mb=2000,
    script:
        "../scripts/pooled.py"
