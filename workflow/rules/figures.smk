# Figures of one dataset, drawn from its derived tables and model tables: one entry each in the
# registry allianceanalysis.figures.FIGURES (inputs, outputs, report title; caption
# workflow/report/<name>.rst).


rule figures:
    input:
        **figure_inputs(),
        key=PSEUDONYM_KEY,
    output:
        figure_outputs(),
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/figures.log",
    benchmark:
        f"{I}/logs/figures.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/figures.py"
