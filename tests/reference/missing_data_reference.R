# Multiple imputation with R's mice, for tests/test_missing_data.py. Run from the repository root;
# writes tests/reference/missing_data.csv (needs r-cran-mice and r-cran-pan).
#
# 1. The client data of data/missing_clients.csv (tests/reference/make_missing_data.py: the
#    synthetic data/ors_srs.csv at early session 3): every incomplete score imputed by mice's
#    two-level method 2l.pan (random intercept by therapist), the other scores entering with
#    their therapist means (predictor code 3), which is the chained-equations form of the joint
#    model with a therapist-level covariance (Enders, Mistler & Keller, 2016); the complete
#    predictors (log sessions, ending) as fixed effects. m = 100, 20 iterations.
#    Each completed data set is analysed as the package's catalogue does (lmerTest, REML,
#    Satterthwaite; glm with sandwich::vcovCL HC1) and pooled with mice::pool.scalar, the
#    complete-data df being the mean Satterthwaite df (n - 3 - 1 for the partial correlation
#    on Fisher's z, Inf for the logistic model).
# 2. mice's own public two-level data set popmis (Hox, 2010: popularity of 2,000 pupils in
#    100 classes, popular missing for 848; mice 3.15.0, GPL-2 | GPL-3), written to
#    data/popmis.csv: popular imputed by 2l.pan given sex and teacher experience, then
#    lmer(popular ~ sex + texp + (1 | school)) pooled.
source("tests/reference/common.R")
source("tests/reference/mice_two_level.R")
m <- 100

pooled <- function(model, estimates, variances, dfcom) {
  rows <- lapply(colnames(estimates), function(term) {
    p <- pool.scalar(estimates[, term], variances[, term], n = dfcom[[term]] + 1, k = 1)
    data.frame(model = model, term = term, estimate = p$qbar, std_error = sqrt(p$t),
               df = p$df, fmi = p$fmi, between = p$b, m = p$m)
  })
  do.call(rbind, rows)
}

lmer_terms <- function(fits, terms) {
  est <- t(sapply(fits, function(f) fixef(f)[terms]))
  se <- t(sapply(fits, function(f) summary(f)$coefficients[terms, "Std. Error"]))
  df <- colMeans(t(sapply(fits, function(f) summary(f)$coefficients[terms, "df"])))
  list(est = est, var = se^2, df = as.list(df))
}

# 1. The client data.
clients <- read.csv("tests/reference/data/missing_clients.csv")
clients$therapist <- as.integer(factor(clients$therapist_id))
scores <- c("outcome_intake", "alliance_early", "outcome_early", "outcome_final", "outcome_s2",
            "alliance_s1", "alliance_s2")
predictors <- c("log_sessions", "ending_dropout", "ending_unknown")
imp <- two_level_mice(clients, scores, predictors, m = m, maxit = 20, seed = 20261205)
completed <- lapply(seq_len(m), function(j) {
  d <- complete(imp, j)
  d$dropout <- clients$dropout
  d$alliance_therapist_mean <- ave(d$alliance_early, d$therapist)
  d$alliance_client_dev <- d$alliance_early - d$alliance_therapist_mean
  d
})

outcome_fits <- lapply(completed, function(d)
  best_lmer(outcome_final ~ outcome_intake + alliance_early + (1 | therapist), d))
icc_fits <- lapply(completed, function(d)
  best_lmer(outcome_final ~ outcome_intake + (1 | therapist), d))
dis_fits <- lapply(completed, function(d)
  best_lmer(outcome_final ~ outcome_intake + alliance_therapist_mean + alliance_client_dev +
              (1 | therapist), d))
a <- lmer_terms(outcome_fits, c("(Intercept)", "outcome_intake", "alliance_early"))
i <- lmer_terms(icc_fits, c("(Intercept)", "outcome_intake"))
g <- lmer_terms(dis_fits, c("alliance_therapist_mean", "alliance_client_dev"))

partial_z <- sapply(completed, function(d) {
  r <- cor(resid(lm(alliance_early ~ outcome_intake, d)), resid(lm(outcome_final ~ outcome_intake, d)))
  atanh(r)
})
n <- nrow(clients)
z <- cbind(partial_r = partial_z)

logits <- lapply(completed, function(d) {
  d <- d[!is.na(d$dropout), ]
  f <- glm(dropout ~ alliance_early, family = binomial, data = d)
  v <- vcovCL(f, cluster = d$therapist, type = "HC1")
  list(est = coef(f)["alliance_early"], var = v["alliance_early", "alliance_early"])
})
drop_est <- cbind(alliance_early = sapply(logits, `[[`, "est"))
drop_var <- cbind(alliance_early = sapply(logits, `[[`, "var"))

popmis <- mice::popmis[, c("pupil", "school", "popular", "sex", "texp")]
write.csv(popmis, "tests/reference/data/popmis.csv", row.names = FALSE, na = "")
pmeth <- c(pupil = "", school = "", popular = "2l.pan", sex = "", texp = "")
ppred <- make.predictorMatrix(popmis)
ppred[, ] <- 0
ppred["popular", c("sex", "texp")] <- 1
ppred["popular", "school"] <- -2
pimp <- mice(popmis, m = m, maxit = 1, method = pmeth, predictorMatrix = ppred, seed = 20261206,
             printFlag = FALSE)
pop_fits <- lapply(seq_len(m), function(j)
  best_lmer(popular ~ sex + texp + (1 | school), complete(pimp, j)))
p <- lmer_terms(pop_fits, c("(Intercept)", "sex", "texp"))

out <- rbind(
  pooled("alliance_outcome_mi", a$est, a$var, a$df),
  pooled("alliance_outcome_mi", z, matrix(1 / (n - 3 - 1), m, 1, dimnames = list(NULL, "partial_r")),
         list(partial_r = n - 3 - 1)),
  pooled("therapist_icc_mi", i$est, i$var, i$df),
  pooled("alliance_disaggregated_mi", g$est, g$var, g$df),
  pooled("dropout_mi", drop_est, drop_var, list(alliance_early = Inf)),
  pooled("popmis", p$est, p$var, p$df)
)
partial <- out$model == "alliance_outcome_mi" & out$term == "partial_r"
out$estimate[partial] <- tanh(out$estimate[partial])  # the correlation; its SE stays on z
out$term[out$term == "(Intercept)"] <- "Intercept"
write.csv(out, "tests/reference/missing_data.csv", row.names = FALSE)
