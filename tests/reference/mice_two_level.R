# The two-level imputation of the client data by mice, shared by
# tests/reference/missing_data_reference.R and benchmarks/mice_fit.R (sourced): each incomplete
# score by 2l.pan (random intercept by therapist), the other scores entering with their
# therapist means (predictor code 3: the chained-equations form of the joint model, Enders,
# Mistler & Keller, 2016), the complete predictors as fixed effects.
suppressPackageStartupMessages(library(mice))

two_level_mice <- function(clients, scores, predictors, m, maxit, seed) {
  clients$therapist <- as.integer(factor(clients$therapist_id))
  data <- clients[, c("therapist", scores, predictors)]
  pred <- make.predictorMatrix(data)
  pred[, ] <- 0
  for (v in scores) {
    pred[v, "therapist"] <- -2
    pred[v, predictors] <- 1
    pred[v, setdiff(scores, v)] <- 3
  }
  meth <- make.method(data)
  meth[] <- ""
  meth[scores] <- "2l.pan"
  mice(data, m = m, maxit = maxit, method = meth, predictorMatrix = pred, seed = seed,
       printFlag = FALSE)
}
