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
write_result(run, args[2], var_therapist = getME(run$fit, "theta")[[1]]^2)
