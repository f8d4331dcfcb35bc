# allianceanalysis workflow: session exports -> validated data -> models, figures, tables.
# Run from anywhere:
#   snakemake --snakefile path/to/Snakefile --directory WORKDIR --configfile my.yaml --cores N
# Without --configfile, the bundled config/config.yaml (the synthetic demo data) is used.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/derive.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/early_warning.smk"
include: "workflow/rules/clinical_significance.smk"
include: "workflow/rules/missing_data.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/pooled.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/simulation.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
