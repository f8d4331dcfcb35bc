# Reference values for the model catalogue, computed with R's lme4 / lmerTest / sandwich from
# the sessions in tests/reference/data/, deriving every variable here in R (independently of
# the Python package) by the definitions in docs/models.md.
#
# Run from the repository root:  Rscript tests/reference/lme4_reference.R   (make reference)
# Writes tests/reference/lme4_<dataset>.csv with columns
#   model, term, estimate, std_error, df, p_value, ci_low, ci_high
# Software used is written to tests/reference/versions.txt.
source("tests/reference/common.R")

# -- derived variables (client_table is in common.R) -------------------------------------------
session_table <- function(s) {
  s <- s[order(s$client_id, s$session), ]
  s$alliance_client_mean <- ave(s$alliance, s$client_id, FUN = function(x) mean(x, na.rm = TRUE))
  s$outcome_client_mean <- ave(s$outcome, s$client_id, FUN = function(x) mean(x, na.rm = TRUE))
  s$alliance_within <- s$alliance - s$alliance_client_mean
  s$outcome_within <- s$outcome - s$outcome_client_mean
  s
}

session_pairs <- function(st) {
  nxt <- function(x) ave(x, st$client_id, FUN = function(v) c(v[-1], NA))
  st$session_next <- nxt(st$session)
  st$outcome_next <- nxt(st$outcome)
  st[!is.na(st$session_next) & !is.na(st$outcome) & !is.na(st$outcome_next) &
       !is.na(st$alliance), ]
}

# -- tidy rows ----------------------------------------------------------------------------------

nakagawa_rows <- function(model, fit) {
  vf <- var(as.vector(model.matrix(fit) %*% fixef(fit)))
  vc <- as.data.frame(VarCorr(fit))
  vr <- sum(vc$vcov[vc$grp != "Residual"])
  ve <- sigma(fit)^2
  rbind(row(model, "r2_marginal", vf / (vf + vr + ve)),
        row(model, "r2_conditional", (vf + vr) / (vf + vr + ve)))
}

icc_row <- function(model, fit, data, formula) {
  vc <- as.data.frame(VarCorr(fit))
  icc <- vc$vcov[1] / (vc$vcov[1] + vc$vcov[2])
  devfun <- lme4::lmer(formula, data, REML = TRUE, devFunOnly = TRUE)
  theta <- getME(fit, "theta")
  cutoff <- devfun(theta) + qchisq(0.95, 1)
  excess <- function(t) devfun(t) - cutoff
  low <- if (excess(0) <= 0) 0 else uniroot(excess, c(0, theta), tol = 1e-12)$root
  high <- uniroot(excess, c(theta, 10 * max(theta, 0.1)), tol = 1e-12, extendInt = "upX")$root
  row(model, "icc", icc, ci_low = low^2 / (1 + low^2), ci_high = high^2 / (1 + high^2))
}

partial_rows <- function(model, d) {
  r <- cor(resid(lm(alliance_early ~ outcome_intake, d)), resid(lm(outcome_final ~ outcome_intake, d)))
  n <- nrow(d)
  p <- 2 * pt(abs(r * sqrt((n - 3) / (1 - r^2))), n - 3, lower.tail = FALSE)
  ci <- tanh(atanh(r) + c(-1, 1) * qnorm(0.975) / sqrt(n - 4))
  sq <- if (ci[1] >= 0) ci^2 else if (ci[2] <= 0) rev(ci^2) else c(0, max(ci^2))
  rbind(row(model, "partial_r", r, df = n - 3, p_value = p, ci_low = ci[1], ci_high = ci[2]),
        row(model, "r2_alliance", r^2, p_value = p, ci_low = sq[1], ci_high = sq[2]))
}

# -- the catalogue ------------------------------------------------------------------------------
catalogue <- function(s) {
  k3 <- client_table(s, 3)
  eligible <- k3[k3$eligible, ]
  st <- session_table(s)
  pairs <- session_pairs(st)
  out <- list()

  f <- outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)
  m <- best_lmer(f, eligible)
  out$alliance_outcome <- rbind(lmm_rows("alliance_outcome", m),
                                nakagawa_rows("alliance_outcome", m),
                                partial_rows("alliance_outcome", eligible))

  for (k in 1:5) {
    ck <- client_table(s, k)
    ck <- ck[ck$eligible, ]
    f <- if (k == 1) outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id) else
      outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)
    out[[paste0("early_alliance_k", k)]] <- lmm_rows(paste0("early_alliance_k", k), best_lmer(f, ck))
  }

  m <- best_lmer(outcome_final ~ outcome_intake + alliance_therapist_mean + alliance_client_dev +
                   (1 | therapist_id), eligible)
  ctx <- coef(summary(best_lmer(outcome_final ~ outcome_intake + alliance_therapist_mean +
                                  alliance_early + (1 | therapist_id), eligible)))
  b <- ctx["alliance_therapist_mean", ]
  q <- qt(0.975, b["df"])
  out$alliance_disaggregated <- rbind(
    lmm_rows("alliance_disaggregated", m),
    row("alliance_disaggregated", "between_minus_within", b["Estimate"], b["Std. Error"], b["df"],
        b["Pr(>|t|)"], b["Estimate"] - q * b["Std. Error"], b["Estimate"] + q * b["Std. Error"]))

  f <- outcome_final ~ outcome_intake + (1 | therapist_id)
  m <- best_lmer(f, eligible)
  out$therapist_icc <- rbind(lmm_rows("therapist_icc", m), icc_row("therapist_icc", m, eligible, f))
  re <- ranef(m, condVar = TRUE)$therapist_id
  cv <- attr(re, "postVar")[1, 1, ]
  est <- re[, "(Intercept)"]
  out$therapist_effects <- row("therapist_effects", rownames(re), est, sqrt(cv), NA, NA,
                               est - qnorm(0.975) * sqrt(cv), est + qnorm(0.975) * sqrt(cv))
  early <- k3[!is.na(k3$alliance_early), ]
  f <- alliance_early ~ 1 + (1 | therapist_id)
  m <- best_lmer(f, early)
  out$alliance_icc <- rbind(lmm_rows("alliance_icc", m), icc_row("alliance_icc", m, early, f))

  fixed <- "outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session"
  out$alliance_next_session <- lmm_rows(
    "alliance_next_session", best_lmer(as.formula(paste(fixed, "+ (1 | client_id)")), pairs))
  out$alliance_next_session_nested <- lmm_rows(
    "alliance_next_session_nested",
    best_lmer(as.formula(paste(fixed, "+ (1 | therapist_id/client_id)")), pairs))

  both <- st[!is.na(st$outcome) & !is.na(st$alliance), ]
  aov_fit <- anova(lm(outcome ~ factor(client_id) + alliance, both))
  ss_x <- aov_fit["alliance", "Sum Sq"]
  ss_e <- aov_fit["Residuals", "Sum Sq"]
  dof <- aov_fit["Residuals", "Df"]
  slope <- coef(lm(outcome ~ factor(client_id) + alliance, both))["alliance"]
  r <- sign(slope) * sqrt(ss_x / (ss_x + ss_e))
  ci <- tanh(atanh(r) + c(-1, 1) * qnorm(0.975) / sqrt(dof - 1))
  out$rm_corr <- row("rm_corr", "r", r, df = dof, p_value = aov_fit["alliance", "Pr(>F)"],
                     ci_low = ci[1], ci_high = ci[2])

  out$growth <- lmm_rows("growth", best_lmer(outcome ~ session + alliance_within +
                                               alliance_client_mean + (1 + session | client_id), both))

  out$outcome_growth <- lmm_rows("outcome_growth", best_lmer(
    outcome ~ session + (1 + session | client_id), st[!is.na(st$outcome), ]))

  d <- k3[!is.na(k3$dropout) & !is.na(k3$alliance_early), ]
  out$dropout <- clustered_logit_rows("dropout", dropout ~ alliance_early, d)
  do.call(rbind, out)
}

for (name in names(datasets)) {
  result <- catalogue(read_reference(datasets[[name]]))
  rownames(result) <- NULL
  write.csv(result, sprintf("tests/reference/lme4_%s.csv", name), row.names = FALSE)
}
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("lmerTest", packageVersion("lmerTest")),
             paste("sandwich", packageVersion("sandwich")),
             paste("metafor", packageVersion("metafor"))), "tests/reference/versions.txt")
