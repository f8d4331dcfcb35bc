# Figures of one dataset, drawn from its derived tables and model tables.


rule figures:
    input:
        sessions="results/{dataset}/derived/sessions.parquet",
        clients="results/{dataset}/derived/clients.parquet",
        models="results/{dataset}/tables/models.csv",
    output:
        expand("results/{{dataset}}/figures/{figure}.{ext}", figure=FIGURES, ext=("png", "svg")),
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        seed=config["seed"],
    log:
        "results/{dataset}/logs/figures.log",
    benchmark:
        "results/{dataset}/logs/figures.benchmark.tsv"
    script:
        "../scripts/figures.py"
