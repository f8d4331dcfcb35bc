# Fit the rupture-dropout hazard with R's lme4::glmer for benchmarks/glmm.py (the peer).
#
# Usage: Rscript benchmarks/glmer_fit.R DATA.csv OUT.json
# Reads the person-periods, warms up on the first 2,000 rows (not timed), times glmer (Laplace,
# lme4's default controls) and writes the wall time, the fixed effects and their standard
# errors, the therapist variance and the log-likelihood as JSON. Peak memory is measured
# around the whole process by the caller.
args <- commandArgs(trailingOnly = TRUE)
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))),
                 "peer.R"))
data <- as.data.frame(fread(args[1]))
data$therapist_id <- factor(data$therapist_id)
formula <- event ~ session + rupture_unresolved + rupture_repaired + (1 | therapist_id)
invisible(suppressWarnings(suppressMessages(try(glmer(formula, data = head(data, 2000),
                                                      family = binomial), silent = TRUE))))
run <- timed(glmer(formula, data = data, family = binomial))
fit <- run$fit
write_json(
  list(
    seconds = run$seconds,
    fixed = as.list(fixef(fit)),
    se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
    var_therapist = getME(fit, "theta")[[1]]^2,
    loglik = as.numeric(logLik(fit)),
    warnings = run$warnings,
    lme4 = as.character(packageVersion("lme4"))
  ),
  args[2], digits = NA, auto_unbox = TRUE
)
