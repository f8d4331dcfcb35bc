# APA-style versions of every model table (Markdown for the report, LaTeX and HTML for papers).


rule apa_tables:
    input:
        model_outputs(),
    output:
        apa_outputs(),
    params:
        adjustment=dataset_adjustment,
        custom=dataset_custom_models,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/apa_tables.log",
    benchmark:
        f"{I}/logs/apa_tables.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/apa_tables.py"
