# Clinical significance of one dataset's outcome (docs/models.md, "Clinical significance"):
# each case's reliable change and category, and the share of cases in each category (a
# sharded dataset's cases computed shard by shard).


rule clinical_significance:
    input:
        validated_pieces(),
    output:
        cases=f"{I}/derived/clinical_significance.parquet",
        table=f"{I}/tables/clinical_significance.csv",
        published=report(
            f"{P}/tables/clinical_significance.csv",
            caption="../report/clinical_significance_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "clinical significance (tidy)"},
        ),
    params:
        outcome=lambda wildcards: dataset_instruments(wildcards)["outcome"],
        settings=config["clinical_significance"],
        suppress_below=config["annual_report"]["suppress_below"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/clinical_significance.log",
    benchmark:
        f"{I}/logs/clinical_significance.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/clinical_significance.py"
