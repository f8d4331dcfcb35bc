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
