# Read, map and validate each dataset; write the analysable sessions (Parquet) and the
# validation files (summary, row accounting, excluded rows). A dataset with shards: in the
# configuration is split by therapist or site, each shard validated by its own job, and the
# shards' files merged into the same four files (allianceanalysis.shards).


rule ingest:
    input:
        data=dataset_path,
    output:
        sessions=f"{I}/validated/sessions.parquet",
        summary=f"{I}/validation/summary.json",
        accounting=f"{I}/validation/row_accounting.csv",
        excluded=f"{I}/validation/excluded_rows.csv",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=False),
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/ingest.log",
    benchmark:
        f"{I}/logs/ingest.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/ingest.py"


rule split:
    input:
        data=dataset_path,
    output:
        parts=directory(f"{I}/shards/parts"),
        split=f"{I}/shards/split.json",
        aside=f"{I}/shards/set_aside.parquet",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/split.log",
    benchmark:
        f"{I}/logs/split.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/split.py"


rule ingest_shard:
    input:
        parts=f"{I}/shards/parts",
        split=f"{I}/shards/split.json",
    output:
        sessions=f"{I}/shards/{{shard}}/validated/sessions.parquet",
        summary=f"{I}/shards/{{shard}}/validation/summary.json",
        problems=f"{I}/shards/{{shard}}/validation/problems.parquet",
        excluded=f"{I}/shards/{{shard}}/validation/excluded.parquet",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
        shard=r"\d+",
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/ingest_shard{{shard}}.log",
    benchmark:
        f"{I}/logs/ingest_shard{{shard}}.benchmark.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/ingest_shard.py"


rule merge_validation:
    input:
        split=f"{I}/shards/split.json",
        aside=f"{I}/shards/set_aside.parquet",
        shards=shard_files("validated/sessions.parquet", "validation/summary.json",
                           "validation/problems.parquet", "validation/excluded.parquet"),
    output:
        summary=f"{I}/validation/summary.json",
        accounting=f"{I}/validation/row_accounting.csv",
        excluded=f"{I}/validation/excluded_rows.csv",
    wildcard_constraints:
        dataset=datasets_pattern(sharded_ones=True),
    params:
        spec=dataset_spec,
    conda:
        CONDA_ENV
    log:
        f"{I}/logs/merge_validation.log",
    benchmark:
        f"{I}/logs/merge_validation.benchmark.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/merge_validation.py"
