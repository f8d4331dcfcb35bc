# Client-level and session-level tables (docs/models.md, "Derived variables") and the
# accounting of the cases they keep and exclude. A sharded dataset's tables are derived shard
# by shard (each client's sessions lie in one shard) and merged.


rule derive:
    input:
        sessions=f"{I}/validated/sessions.parquet",
        key=PSEUDONYM_KEY,
    output:
        clients=f"{I}/derived/clients.parquet",
        sessions=f"{I}/derived/sessions.parquet",
        pairs=f"{I}/derived/pairs.parquet",
        accounting=f"{I}/derived/accounting.csv",
        codes=f"{I}/derived/therapist_codes.csv",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=False),
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        adjustment=dataset_adjustment,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/derive.log",
    benchmark:
        f"{I}/logs/derive.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/derive.py"


rule derive_shard:
    input:
        sessions=f"{I}/shards/{{shard}}/validated/sessions.parquet",
    output:
        clients=f"{I}/shards/{{shard}}/derived/clients.parquet",
        sessions=f"{I}/shards/{{shard}}/derived/sessions.parquet",
        pairs=f"{I}/shards/{{shard}}/derived/pairs.parquet",
        counts=f"{I}/shards/{{shard}}/derived/counts.json",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
        shard=r"\d+",
    params:
        instruments=dataset_instruments,
        early_session=config["early_session"],
        adjustment=dataset_adjustment,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/derive_shard{{shard}}.log",
    benchmark:
        f"{I}/logs/derive_shard{{shard}}.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/derive_shard.py"


rule merge_derived:
    input:
        shards=shard_files(*(f"derived/{name}" for name in DERIVED_SHARD_FILES)),
        key=PSEUDONYM_KEY,
    output:
        clients=f"{I}/derived/clients.parquet",
        accounting=f"{I}/derived/accounting.csv",
        codes=f"{I}/derived/therapist_codes.csv",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
    params:
        early_session=config["early_session"],
        adjustment=dataset_adjustment,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/merge_derived.log",
    benchmark:
        f"{I}/logs/merge_derived.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/merge_derived.py"
