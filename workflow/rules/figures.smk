# Figures, drawn from the model tables.


rule figure_early_alliance:
    input:
        "results/{dataset}/tables/early_alliance.csv",
    output:
        png="results/{dataset}/figures/early_alliance_by_k.png",
        svg="results/{dataset}/figures/early_alliance_by_k.svg",
    params:
        instruments=dataset_instruments,
    log:
        "results/{dataset}/logs/figure_early_alliance.log",
    script:
        "../scripts/figure_early_alliance.py"
