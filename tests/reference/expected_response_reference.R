# Reference values for the expected-treatment-response model (allianceanalysis.expected_response)
# on tests/reference/data/ors_srs.csv: the change data derived here in R by the definitions in
# docs/models.md, fitted with lme4 (REML; lmerTest's Satterthwaite df).
#
# Run from the repository root:  Rscript tests/reference/expected_response_reference.R
# (make reference). Writes tests/reference/expected_response_ors_srs.csv.
source("tests/reference/common.R")

s <- read.csv("tests/reference/data/ors_srs.csv", stringsAsFactors = FALSE)
intake <- s[s$session == 1, ]
s$intake <- intake$ors[match(s$client_id, intake$client_id)]
d <- s[s$session >= 2 & !is.na(s$intake) & !is.na(s$ors), ]
intake_mean <- mean(d$intake[!duplicated(d$client_id)])
d$change <- d$ors - d$intake
d$intake_c <- d$intake - intake_mean
d$log_session <- log(d$session)
d$intake_log_session <- d$intake_c * d$log_session
fit <- best_lmer(change ~ intake_c + log_session + intake_log_session + (1 + log_session | client_id), d)
out <- lmm_rows("expected_response", fit)
rownames(out) <- NULL
write.csv(out, "tests/reference/expected_response_ors_srs.csv", row.names = FALSE)
