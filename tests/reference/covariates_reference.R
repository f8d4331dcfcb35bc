# Covariates and moderators (docs/models.md, "Covariates and moderators") in R, for
# tests/test_covariates.py: the client table of data/covariates.csv (k = 3) with each client's
# age band, diagnosis, treatment and severity, eligible cases only; then
#   alliance_outcome                 adjusted for age band and diagnosis (lme4/lmerTest), and the
#                                    partial correlation of early alliance and final outcome
#                                    controlling intake and both covariates (residual correlation)
#   alliance_outcome_by_treatment    the alliance's interaction with treatment; its conditional
#                                    effect at each treatment by lmerTest::contest1D (Satterthwaite)
#   alliance_outcome_by_severity     the same with a continuous moderator: conditional effects at
#                                    the mean and one SD either side, and the Johnson-Neyman bounds
#                                    from the quadratic with t on the interaction's Satterthwaite df
# Run from the repository root; writes tests/reference/covariates.csv.
source("tests/reference/common.R")

s <- read.csv("tests/reference/data/covariates.csv", stringsAsFactors = FALSE)
s$outcome <- s$ors
s$alliance <- s$srs
clients <- client_table(s, 3)
first <- s[!duplicated(s$client_id), ]
for (v in c("age_band", "diagnosis", "treatment", "severity")) {
  clients[[v]] <- first[[v]][match(clients$client_id, first$client_id)]
}
e <- clients[clients$eligible, ]

contrast_row <- function(model, term, fit, weights) {
  L <- setNames(rep(0, length(fixef(fit))), names(fixef(fit)))
  L[names(weights)] <- weights
  ct <- contest1D(fit, L, ddf = "Satterthwaite", confint = TRUE)
  row(model, term, ct$Estimate, ct$`Std. Error`, ct$df, ct$`Pr(>|t|)`, ct$lower, ct$upper)
}

adjusted <- best_lmer(outcome_final ~ outcome_intake + alliance_early + age_band + diagnosis +
                        (1 | therapist_id), e)
controls <- model.matrix(~ outcome_intake + age_band + diagnosis, e)
rx <- resid(lm(e$alliance_early ~ controls - 1))
ry <- resid(lm(e$outcome_final ~ controls - 1))
r <- cor(rx, ry)
k <- ncol(controls) - 1
n <- nrow(e)
z <- atanh(r) + c(-1, 1) * qnorm(0.975) / sqrt(n - 3 - k)
p <- 2 * pt(abs(r * sqrt((n - 2 - k) / (1 - r^2))), n - 2 - k, lower.tail = FALSE)
out <- rbind(lmm_rows("alliance_outcome", adjusted),
             row("alliance_outcome", "partial_r", r, NA, n - 2 - k, p, tanh(z[1]), tanh(z[2])))

by_treatment <- best_lmer(outcome_final ~ outcome_intake + alliance_early + age_band + diagnosis +
                            treatment + alliance_early:treatment + (1 | therapist_id), e)
model <- "alliance_outcome_by_treatment"
out <- rbind(out, lmm_rows(model, by_treatment),
             contrast_row(model, "alliance_early|treatment=CBT", by_treatment,
                          c(alliance_early = 1)),
             contrast_row(model, "alliance_early|treatment=PDT", by_treatment,
                          c(alliance_early = 1, `alliance_early:treatmentPDT` = 1)))

by_severity <- best_lmer(outcome_final ~ outcome_intake + alliance_early + age_band + diagnosis +
                           severity + alliance_early:severity + (1 | therapist_id), e)
model <- "alliance_outcome_by_severity"
m <- mean(e$severity)
sd1 <- sd(e$severity)
out <- rbind(out, lmm_rows(model, by_severity))
for (at in list(c("mean-1sd", m - sd1), c("mean", m), c("mean+1sd", m + sd1))) {
  out <- rbind(out, contrast_row(model, paste0("alliance_early|severity=", at[1]), by_severity,
                                 c(alliance_early = 1, `alliance_early:severity` = as.numeric(at[2]))))
}
co <- coef(summary(by_severity, ddf = "Satterthwaite"))
v <- as.matrix(vcov(by_severity))
b1 <- co["alliance_early", "Estimate"]
b3 <- co["alliance_early:severity", "Estimate"]
t <- qt(0.975, co["alliance_early:severity", "df"])
a <- b3^2 - t^2 * v["alliance_early:severity", "alliance_early:severity"]
b <- 2 * (b1 * b3 - t^2 * v["alliance_early", "alliance_early:severity"])
cc <- b1^2 - t^2 * v["alliance_early", "alliance_early"]
roots <- sort((-b + c(-1, 1) * sqrt(b^2 - 4 * a * cc)) / (2 * a))
out <- rbind(out, row(model, "johnson_neyman_low", roots[1]),
             row(model, "johnson_neyman_high", roots[2]))
write.csv(out, "tests/reference/covariates.csv", row.names = FALSE)
