# Fit one linear mixed model with R's lme4 for benchmarks/models.py (the peer).
#
# Usage: Rscript benchmarks/lme4_fit.R DATA.csv "FORMULA" OUT.json
# Reads the data and warms up on its first 2,000 rows (not timed), times lmer(REML = TRUE) with
# lme4's default controls, and
# writes the wall time, the fixed effects, the variance components and the REML
# log-likelihood as JSON. Peak memory is measured around the whole process by the caller.
args <- commandArgs(trailingOnly = TRUE)
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))),
                 "peer.R"))
data <- as.data.frame(fread(args[1]))
for (group in intersect(c("therapist_id", "client_id"), names(data))) {
  data[[group]] <- factor(data[[group]])
}
# Warm-up on the first 2,000 rows (not timed), as the Python side does.
invisible(suppressWarnings(suppressMessages(try(lmer(as.formula(args[2]),
                                                     data = head(data, 2000)), silent = TRUE))))
run <- timed(lmer(as.formula(args[2]), data = data, REML = TRUE))
write_result(run, args[3], varcorr = as.data.frame(VarCorr(run$fit)))
