# APA-style versions of every model table (Markdown for the report, LaTeX and HTML for papers).


rule apa_tables:
    input:
        "results/{dataset}/tables/models.csv",
    output:
        apa_outputs(),
    conda:
        CONDA_ENV
    log:
        "results/{dataset}/logs/apa_tables.log",
    benchmark:
        "results/{dataset}/logs/apa_tables.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/apa_tables.py"
