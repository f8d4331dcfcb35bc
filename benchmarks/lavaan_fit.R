# Fit a within-person model with R's lavaan for benchmarks/within_person.py (the peer).
#
# Usage: Rscript benchmarks/lavaan_fit.R latent|riclpm DATA.csv WAVES OUT.json
#   latent  DATA holds therapist_id, outcome_final, alliance_early, outcome_intake (eligible
#           clients): sem(latent, cluster = "therapist_id", fixed.x = FALSE)
#   riclpm  DATA holds a1..aT, y1..yT (one row per client): the constrained and the
#           unconstrained RI-CLPM, missing = "ML", each with its fit measures (as the catalogue's
#           riclpm reports both)
# The syntax is tests/reference/within_person_syntax.R's, the one the reference values come
# from. A warm-up fit on the first 2,000 rows (not timed) loads what lavaan loads lazily. Writes
# the wall time, the estimates of the labelled parameters, the log-likelihood and warnings.
args <- commandArgs(trailingOnly = TRUE)
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "peer.R"))
source(file.path(here, "..", "tests", "reference", "within_person_syntax.R"))
suppressPackageStartupMessages(library(lavaan))
kind <- args[1]
data <- as.data.frame(fread(args[2]))
waves <- as.integer(args[3])
fit_all <- function(data) {
  if (kind == "latent") {
    return(list(sem(latent("outcome_intake"), data, cluster = "therapist_id", fixed.x = FALSE)))
  }
  lapply(c(TRUE, FALSE), function(constrained) {
    fit <- lavaan(paste(riclpm_syntax(constrained, waves), collapse = "\n"), data,
                  missing = "ML", meanstructure = TRUE, int.ov.free = TRUE)
    if (lavInspect(fit, "converged")) fitMeasures(fit, c("chisq", "cfi", "rmsea", "srmr"))
    fit
  })
}
invisible(suppressWarnings(try(fit_all(head(data, 2000)), silent = TRUE)))
run <- timed(fit_all(data))
first <- run$fit[[1]]
pe <- parameterEstimates(first)
pe <- pe[pe$label != "" & !duplicated(pe$label), ]
write_json(
  list(
    seconds = run$seconds,
    estimates = as.list(setNames(pe$est, pe$label)),
    loglik = if (lavInspect(first, "converged")) as.numeric(fitMeasures(first, "logl")) else NA,
    converged = lavInspect(first, "converged"),
    warnings = run$warnings,
    lavaan = as.character(packageVersion("lavaan")),
    r = R.version.string
  ),
  args[4], digits = NA, auto_unbox = TRUE
)
