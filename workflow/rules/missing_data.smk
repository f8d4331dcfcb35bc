# Missing data (docs/models.md, "Missing data"): the client-level models after multilevel
# multiple imputation, the tipping-point analysis of dropouts' final outcomes, and which pieces
# are missing how often. A sharded dataset imputes each early session in a job of its own (its
# own sampler: the longest jobs, run side by side), another all in one job; then one job puts
# their rows together.


rule impute:
    input:
        validated_pieces(),
    output:
        rows=f"{I}/missing_data/{{part}}.parquet",
        pattern=f"{I}/missing_data/{{part}}_pattern.parquet",
    wildcard_constraints:
        part=r"k\d+|all",
    params:
        options=model_options,
        settings=config["missing_data"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/impute_{{part}}.log",
    benchmark:
        f"{I}/logs/impute_{{part}}.benchmark.tsv"
    # the longest jobs (the imputation's samplers): started first, the others run beside them
    priority: 10
    resources:
        mem_mb=4000,
    script:
        "../scripts/impute.py"


rule missing_data:
    input:
        parts=imputed_parts,
        pattern=imputed_pattern,
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
        suppress_below=config["annual_report"]["suppress_below"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/missing_data.log",
    benchmark:
        f"{I}/logs/missing_data.benchmark.tsv"
    script:
        "../scripts/missing_data.py"
