# Missing data (docs/models.md, "Missing data"): the client-level models after multilevel
# multiple imputation, the tipping-point analysis of dropouts' final outcomes, and which pieces
# are missing how often.


rule missing_data:
    input:
        validated_pieces(),
    output:
        imputed=report(
            f"{P}/tables/multiple_imputation.csv",
            caption="../report/multiple_imputation_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "multiple imputation (tidy)"},
        ),
        tipping=report(
            f"{P}/tables/tipping_point.csv",
            caption="../report/tipping_point_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "tipping point (tidy)"},
        ),
        pattern=f"{I}/tables/missingness.csv",
        published_pattern=report(
            f"{P}/tables/missingness.csv",
            caption="../report/missingness_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "missingness (tidy)"},
        ),
    params:
        options=model_options,
        settings=config["missing_data"],
        suppress_below=config["annual_report"]["suppress_below"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/missing_data.log",
    benchmark:
        f"{I}/logs/missing_data.benchmark.tsv"
    # the longest job (the imputation's samplers): started first, the others run beside it
    priority: 10
    resources:
        mem_mb=4000,
    script:
        "../scripts/missing_data.py"
