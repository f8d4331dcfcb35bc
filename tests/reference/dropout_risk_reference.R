# Reference values for the dropout-risk model (allianceanalysis.dropout_risk): the discrete-time
# hazard of an unplanned ending, a logistic regression over person-periods with standard errors
# clustered by therapist (sandwich::vcovCL, HC1). The person-periods are derived here in R from
# the sessions in tests/reference/data/, by the definitions in docs/models.md.
#
# Run from the repository root:  Rscript tests/reference/dropout_risk_reference.R
# (make reference). Writes tests/reference/dropout_risk_<dataset>.csv with columns
#   model, term, estimate, std_error, df, p_value, ci_low, ci_high
source("tests/reference/common.R")

for (name in names(datasets)) {
  p <- person_periods(read_reference(datasets[[name]]))
  p <- p[complete.cases(p[, c("alliance_first", "alliance_change", "outcome_change", "session")]), ]
  result <- rbind(
    clustered_logit_rows("dropout_risk",
                         event ~ alliance_first + alliance_change + outcome_change + session, p),
    row("dropout_risk", "n_person_periods", nrow(p)))
  rownames(result) <- NULL
  write.csv(result, sprintf("tests/reference/dropout_risk_%s.csv", name), row.names = FALSE)
}
