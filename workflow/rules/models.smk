# The model catalogue: all models of a dataset in one job (each is quick; one process saves
# the start-up of many), every table separately and together. A sharded dataset's session
# table and pairs are read shard by shard by the models fitted from sufficient statistics.


rule models:
    input:
        clients=f"{I}/derived/clients.parquet",
        sessions=derived_pieces("sessions.parquet"),
        pairs=derived_pieces("pairs.parquet"),
        validated=validated_pieces(),
        codes=f"{I}/derived/therapist_codes.csv",
    output:
        tables=model_outputs(),
        combined=report(
            f"{P}/tables/models.csv",
            caption="../report/models_table.rst",
            category="{dataset}",
            subcategory="Tables",
            labels={"table": "all models (tidy)"},
        ),
    params:
        options=model_options,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/models.log",
    benchmark:
        f"{I}/logs/models.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/models.py"
