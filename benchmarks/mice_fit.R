# Peer of benchmarks/missing_data.py: mice's two-level imputation of the client data it is
# given (the imputation model's data at early session 3: the incomplete scores, the complete
# predictors, the therapist), as tests/reference/missing_data_reference.R imputes it
# (tests/reference/mice_two_level.R), m = 20, 20 iterations. Run from the repository root:
# Rscript benchmarks/mice_fit.R data.csv out.json
suppressPackageStartupMessages(library(jsonlite))
source("tests/reference/mice_two_level.R")
args <- commandArgs(trailingOnly = TRUE)
clients <- read.csv(args[1])
scores <- intersect(c("outcome_intake", "alliance_early", "outcome_early", "outcome_final",
                      "outcome_s2", "alliance_s1", "alliance_s2"), names(clients))
predictors <- setdiff(names(clients), c("client_id", "therapist_id", "dropout", scores))
start <- proc.time()[["elapsed"]]
imp <- two_level_mice(clients, scores, predictors, m = 20, maxit = 20, seed = 1)
seconds <- proc.time()[["elapsed"]] - start
write_json(list(seconds = seconds, rows = nrow(clients)), args[2], auto_unbox = TRUE)
