# Missing data (docs/models.md, "Missing data"): the client-level models after multilevel
# multiple imputation, the tipping-point analysis of dropouts' final outcomes, and which pieces
# are missing how often. A sharded dataset imputes each early session in a job of its own (its
# own sampler: the longest jobs, run side by side), and one job puts their rows together.

MISSING_DATA_OUTPUTS = {
    "imputed": report_item(
        f"{P}/tables/multiple_imputation.csv",
        caption="../report/multiple_imputation_table.rst",
        category="{dataset}",
        subcategory="Tables",
        labels={"table": "multiple imputation (tidy)"},
    ),
    "tipping": report_item(
        f"{P}/tables/tipping_point.csv",
        caption="../report/tipping_point_table.rst",
        category="{dataset}",
        subcategory="Tables",
        labels={"table": "tipping point (tidy)"},
    ),
    "pattern": f"{I}/tables/missingness.csv",
    "published_pattern": report_item(
        f"{P}/tables/missingness.csv",
        caption="../report/missingness_table.rst",
        category="{dataset}",
        subcategory="Tables",
        labels={"table": "missingness (tidy)"},
    ),
}


rule missing_data:
    input:
        validated_pieces(),
    output:
        **MISSING_DATA_OUTPUTS,
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=False),
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
    # the longest job (the imputation's samplers): started first but for early warning's
    # chain (rules/early_warning.smk), the others run beside it
    priority: 10
    resources:
        mem_mb=4000,
    script:
        "../scripts/missing_data.py"


rule impute:
    input:
        validated_pieces(),
    output:
        rows=f"{I}/missing_data/k{{early}}.parquet",
        pattern=f"{I}/missing_data/k{{early}}_pattern.parquet",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
        early=r"\d+",
    params:
        options=model_options,
        settings=config["missing_data"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/impute_k{{early}}.log",
    benchmark:
        f"{I}/logs/impute_k{{early}}.benchmark.tsv"
    # long jobs (the imputation's samplers): started first but for early warning's chain
    # (rules/early_warning.smk), the others run beside them
    priority: 10
    resources:
        mem_mb=4000,
    script:
        "../scripts/impute.py"


rule merge_missing_data:
    input:
        parts=imputed_parts,
        pattern=f"{I}/missing_data/k{config['early_session']}_pattern.parquet",
    output:
        **MISSING_DATA_OUTPUTS,
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
    params:
        suppress_below=config["annual_report"]["suppress_below"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/merge_missing_data.log",
    benchmark:
        f"{I}/logs/merge_missing_data.benchmark.tsv"
    script:
        "../scripts/merge_missing_data.py"
