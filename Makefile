# Two commands on a fresh machine (Python 3.11 + make): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed
CORES ?= 2
DATASETS = $(shell $(BIN)/python -c "import yaml; print(' '.join(yaml.safe_load(open('config/config.yaml'))['datasets']))")

.PHONY: help setup run report publish test test-slow test-browser test-cluster cluster-packages check-report lint format demo-data reference \
	bench-ingest bench-faults bench bench-covariates bench-within bench-missing bench-scale fuzz simulation-study clean lab notebooks

help:
	@echo "make run        set up .venv and run the workflow on the bundled demo data"
	@echo "make test       set up .venv and run the test suite"
	@echo "make report     annual reports (results/<dataset>/published/annual_report/, internal/supervision/) and results/report.html
	@echo "make publish    the publishable outputs in results/published.zip, after the disclosure audit""
	@echo "make lab        set up JupyterLab and open the student notebooks (notebooks/README.md)"
	@echo "make notebooks  rebuild each notebooks/*.ipynb from its reviewed .py twin (jupytext)"
	@echo "make test-slow  the slow (marked) checks: many-replicate recovery and coverage"
	@echo "make test-cluster  the workflow through a real one-node SLURM cluster (root; installs Slurm)"
	@echo "make test-browser  the report in headless Chromium (needs: apt-get install chromium)"
	@echo "make check-report  run, build the report, screenshot every figure to results/report_screenshots"
	@echo "make fuzz       coverage-guided fuzzing (atheris) of the loader and the config, FUZZ_SECONDS each"
	@echo "make lint       ruff check and format check"
	@echo "make demo-data  regenerate data/demo/ with the simulator (fixed seed)"
	@echo "make reference  recompute the R (lme4) reference values in tests/reference/ (needs R)"
	@echo "make bench-ingest  benchmark simulation and ingest (benchmarks/results/ingest.csv)"
	@echo "make bench-faults  faults of scale in input: a 5 GB file, a million bad rows, 10 MB cells (benchmarks/results/input_faults.csv)"
	@echo "make bench      models against lme4 and the whole workflow, 1k-100k clients (BENCH_FULL=1: 1M)"
	@echo "make bench-covariates  10 covariates and a moderator against lme4, 100k and 1M clients"
	@echo "make bench-within  latent disaggregation and RI-CLPM against lavaan, 10k-1M clients"
	@echo "make bench-missing multiple imputation against mice, 1k-1M clients"
	@echo "make bench-scale   the whole workflow sharded (and whole) at BENCH_SCALE clients (default 1M)"
	@echo "make simulation-study  power and bias by simulation, one job per batch (results/_simulation/)"
	@echo "make clean      remove results/ and workflow state (keeps .venv)"

# The virtual environment is (re)built when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,lab]"
	touch $(LAB_STAMP)

# Jupyter refuses to run as root unless told; containers and this project's machines run as root.
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.py

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs --rerun-incomplete
	$(MAKE) --no-print-directory report

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs --rerun-incomplete $(foreach d,$(DATASETS),results/$(d)/published/annual_report results/$(d)/internal/supervision)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

publish: $(STAMP)
	$(BIN)/allianceanalysis publish config/config.yaml

# TEST_ARGS adds pytest options, e.g. TEST_ARGS='-m "not slow"' (the browser checks too, sharing
# the suite's one demo run; .ci/run does this).
test: $(STAMP)
	$(BIN)/python -m pytest $(TEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow"

test-browser: $(STAMP)
	$(BIN)/python -m pytest -m "browser"

# A real one-node SLURM cluster (tests/slurm.py, docs/cluster.md): Debian's Slurm and munge are
# installed when missing (as root), the workflow runs through workflow/profiles/slurm and is
# compared with a local run; bounded by SIGINT after CLUSTER_TIMEOUT seconds, and afterwards no
# daemon and no /etc/slurm/slurm.conf may be left.
CLUSTER_PACKAGES := slurmctld slurmd slurm-client munge
CLUSTER_TIMEOUT ?= 600
cluster-packages:
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
		&& command -v munged >/dev/null || { apt-get install -y -qq $(CLUSTER_PACKAGES) >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq $(CLUSTER_PACKAGES) >/dev/null; }; }

test-cluster: $(STAMP) cluster-packages
	timeout -s INT -k 60 $(CLUSTER_TIMEOUT) $(BIN)/python -m pytest -m cluster -n0 -rP tests/test_slurm_cluster.py
	@! pgrep -x slurmctld >/dev/null || { echo "test-cluster left slurmctld running"; exit 1; }
	@! pgrep -x slurmd >/dev/null || { echo "test-cluster left slurmd running"; exit 1; }
	@! pgrep -x slurmstepd >/dev/null || { echo "test-cluster left a job step running"; exit 1; }
	@test ! -e /etc/slurm/slurm.conf || ! grep -q "allianceanalysis's cluster test" /etc/slurm/slurm.conf \
		|| { echo "test-cluster left /etc/slurm/slurm.conf"; exit 1; }

check-report: run
	$(BIN)/python tests/report_check.py results/report.html results/report_screenshots $(DATASETS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo-data: $(STAMP)
	$(BIN)/allianceanalysis simulate data/demo/sessions.csv --preset demo --truth data/demo/truth.json
	$(BIN)/allianceanalysis simulate data/demo/clinic_b.csv --preset demo-clinic-b --seed 20261126 \
		--clinic-export --truth data/demo/clinic_b_truth.json

reference:
	Rscript tests/reference/lme4_reference.R
	Rscript tests/reference/metafor_reference.R
	Rscript tests/reference/dropout_risk_reference.R
	Rscript tests/reference/feedback_reference.R
	Rscript tests/reference/expected_response_reference.R
	Rscript tests/reference/ruptures_reference.R
	Rscript tests/reference/clinical_significance_reference.R
	Rscript tests/reference/lm_reference.R
	Rscript tests/reference/lme4_public_reference.R
	Rscript tests/reference/formula_reference.R
	Rscript tests/reference/covariates_reference.R
	Rscript tests/reference/glmm_formula_reference.R
	Rscript tests/reference/within_person_reference.R
	Rscript tests/reference/pooling_reference.R
	$(BIN)/python tests/reference/make_missing_data.py
	Rscript tests/reference/missing_data_reference.R

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/ingest.py --tiers 16000 160000 1280000

bench-faults: $(STAMP)
	$(BIN)/python benchmarks/input_faults.py

# atheris is an extra (a compiled libFuzzer wheel), installed only here: make test never needs it.
FUZZ_SECONDS ?= 300
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -artifact_prefix=results/_fuzz/
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,fuzz]"
	mkdir -p results/_fuzz/loader results/_fuzz/config
	cp tests/corpus/good/*.csv tests/corpus/bad/*.csv data/demo/sessions.csv results/_fuzz/loader/
	cp config/*.yaml results/_fuzz/config/
	$(BIN)/python tests/fuzz/atheris_targets.py loader results/_fuzz/loader $(FUZZ_FLAGS)
	$(BIN)/python tests/fuzz/atheris_targets.py config results/_fuzz/config $(FUZZ_FLAGS)

# The models against R's lme4 (when Rscript is installed) and the whole workflow, at 1k, 10k and
# 100k clients; BENCH_FULL=1 adds 1M (about half an hour, most of it lme4). BENCH_SCALE=10000000
# adds issue 23's goal, a national decade (about 80 minutes; root, for the SLURM cluster): 1M
# clients whole and sharded, outputs compared, then BENCH_SCALE clients sharded, locally and
# through the SLURM profile on a one-node cluster (tests/slurm.py), outputs compared; then the
# map (split, validation, derivation) of a Parquet input, and of a file with a million bad rows
# and duplicated sessions, under exclude and fail (about 25 minutes more)
# (benchmarks/results/scale*.csv; docs/performance.md).
BENCH_TIERS = 1000 10000 100000 $(if $(BENCH_FULL),1000000)
bench: $(STAMP) $(if $(BENCH_SCALE),cluster-packages)
	$(BIN)/python benchmarks/models.py --tiers $(BENCH_TIERS) --workflow
	$(BIN)/python benchmarks/glmm.py --tiers $(BENCH_TIERS)
	$(if $(BENCH_SCALE),$(BIN)/python benchmarks/scale.py --tiers 1000000 --whole)
	$(if $(BENCH_SCALE),$(BIN)/python benchmarks/scale.py --tiers $(BENCH_SCALE) --slurm)
	$(if $(BENCH_SCALE),$(BIN)/python benchmarks/scale.py --tiers $(BENCH_SCALE) --input parquet --map-only)
	$(if $(BENCH_SCALE),$(BIN)/python benchmarks/scale.py --tiers $(BENCH_SCALE) --faults)
	$(BIN)/python benchmarks/plot.py

# Issue 19's tier: the catalogue with 10 covariates (one a 5-level factor) and a moderator, ours
# against lme4 at 100k and 1M clients (benchmarks/results/covariates.csv; docs/performance.md).
bench-covariates: $(STAMP)
	$(BIN)/python benchmarks/covariates.py --tiers 100000 1000000

# Issue 20's tier: the latent disaggregation and the RI-CLPM against lavaan, 10k to 1M clients
# (benchmarks/results/within_person.csv; docs/performance.md).
bench-within: $(STAMP)
	$(BIN)/python benchmarks/within_person.py --tiers 10000 100000 1000000
	$(BIN)/python benchmarks/plot.py

# Issue 21's tier: multiple imputation and the pooled client-level models, 1k to 1M clients,
# against R's mice where it finishes in 10 minutes (benchmarks/results/missing_data.csv).
bench-missing: $(STAMP)
	$(BIN)/python benchmarks/missing_data.py --tiers 1000 10000 100000 1000000

# Issue 23's tier: the whole workflow on a national decade, sharded by therapist and whole, each
# job's time and memory, outputs compared (benchmarks/results/scale.csv; docs/performance.md).
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py --tiers $(or $(BENCH_SCALE),1000000) --whole

simulation-study: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs results/_simulation/power.csv

clean:
	rm -rf results/*/ .snakemake
