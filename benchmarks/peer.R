# Shared by the benchmark's R peers (lme4_fit.R, glmer_fit.R): their libraries, and a timer
# that keeps a fit's warnings. `fit` is a call, evaluated (lazily) inside the timer.
suppressPackageStartupMessages({
  library(lme4)
  library(data.table)
  library(jsonlite)
})

timed <- function(fit) {
  warnings_seen <- character()
  start <- proc.time()[["elapsed"]]
  value <- withCallingHandlers(fit, warning = function(w) {
    warnings_seen <<- c(warnings_seen, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(fit = value, seconds = proc.time()[["elapsed"]] - start, warnings = warnings_seen)
}

# Write a timed fit's result as JSON: wall time, fixed effects and their standard errors, the
# log-likelihood, warnings and versions, and the model's own fields (`...`).
write_result <- function(run, path, ...) {
  fit <- run$fit
  write_json(
    list(
      seconds = run$seconds,
      fixed = as.list(fixef(fit)),
      se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
      ...,
      loglik = as.numeric(logLik(fit)),
      warnings = run$warnings,
      lme4 = as.character(packageVersion("lme4")),
      r = R.version.string
    ),
    path, digits = NA, auto_unbox = TRUE
  )
}
