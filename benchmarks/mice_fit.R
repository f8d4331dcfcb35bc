# Peer of benchmarks/missing_data.py: mice's two-level imputation of the client data it is
# given (the imputation model's data at early session 3: the incomplete scores, the complete
# predictors, the therapist), as tests/reference/missing_data_reference.R imputes it: 2l.pan
# for each incomplete score with the other scores' therapist means (predictor code 3), m = 20,
# 20 iterations. Usage: Rscript benchmarks/mice_fit.R data.csv out.json
suppressPackageStartupMessages({ library(mice); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
clients <- read.csv(args[1])
clients$therapist <- as.integer(factor(clients$therapist_id))
scores <- intersect(c("outcome_intake", "alliance_early", "outcome_early", "outcome_final",
                      "outcome_s2", "alliance_s1", "alliance_s2"), names(clients))
predictors <- setdiff(names(clients), c("client_id", "therapist_id", "therapist", "dropout", scores))
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
start <- proc.time()[["elapsed"]]
imp <- mice(data, m = 20, maxit = 20, method = meth, predictorMatrix = pred, seed = 1,
            printFlag = FALSE)
seconds <- proc.time()[["elapsed"]] - start
write_json(list(seconds = seconds, rows = nrow(data)), args[2], auto_unbox = TRUE)
