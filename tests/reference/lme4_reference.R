# Reference values for the model catalogue, computed with R's lme4 / lmerTest / sandwich from
# the sessions in tests/reference/data/, deriving every variable here in R (independently of
# the Python package) by the definitions in docs/models.md.
#
# Run from the repository root:  Rscript tests/reference/lme4_reference.R   (make reference)
# Writes tests/reference/lme4_<dataset>.csv with columns
#   model, term, estimate, std_error, df, p_value, ci_low, ci_high
# Software used is written to tests/reference/versions.txt.
source("tests/reference/common.R")
suppressPackageStartupMessages(library(sandwich))

datasets <- list(
  ors_srs = list(file = "tests/reference/data/ors_srs.csv", outcome = "ors", alliance = "srs"),
  phq9_wai = list(file = "tests/reference/data/phq9_wai.csv", outcome = "phq9", alliance = "wai_sr")
)

# -- derived variables -------------------------------------------------------------------------
client_table <- function(s, k) {
  s <- s[order(s$client_id, s$session), ]
  ids <- unique(s$client_id)
  at <- function(session, column) {
    rows <- s[s$session == session, ]
    rows[[column]][match(ids, rows$client_id)]
  }
  later <- s[s$session > k & !is.na(s$outcome), ]
  last <- later[!duplicated(later$client_id, fromLast = TRUE), ]
  therapist <- s$therapist_id[match(ids, s$client_id)]
  end_status <- tapply(s$end_status, s$client_id, function(x) {
    x <- x[!is.na(x) & x != ""]
    if (length(x)) tail(x, 1) else NA
  })[ids]
  out <- data.frame(
    client_id = ids, therapist_id = therapist,
    outcome_intake = at(1, "outcome"), alliance_early = at(k, "alliance"),
    outcome_early = at(k, "outcome"),
    outcome_final = last$outcome[match(ids, last$client_id)],
    dropout = ifelse(end_status == "dropout", 1, ifelse(end_status == "planned", 0, NA))
  )
  out$early_change <- out$outcome_early - out$outcome_intake
  out$eligible <- !is.na(out$outcome_intake) & !is.na(out$alliance_early) & !is.na(out$outcome_final)
  eligible_early <- ifelse(out$eligible, out$alliance_early, NA)
  out$alliance_therapist_mean <- ave(eligible_early, out$therapist_id,
                                     FUN = function(x) mean(x, na.rm = TRUE))
  out$alliance_therapist_mean[!out$eligible] <- NA
  out$alliance_client_dev <- eligible_early - out$alliance_therapist_mean
  out
}

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

group_label <- function(g) sub("_id$", "", sub(":.*", "", g))  # lme4 names a nested factor inner:outer

lmm_rows <- function(model, fit) {
  co <- coef(summary(fit, ddf = "Satterthwaite"))
  q <- qt(0.975, co[, "df"])
  terms <- sub("\\(Intercept\\)", "Intercept", rownames(co))
  out <- row(model, terms, co[, "Estimate"], co[, "Std. Error"], co[, "df"], co[, "Pr(>|t|)"],
             co[, "Estimate"] - q * co[, "Std. Error"], co[, "Estimate"] + q * co[, "Std. Error"])
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) {
    g <- vc$grp[i]
    if (g == "Residual") {
      out <- rbind(out, row(model, "var_residual", vc$vcov[i]))
    } else if (is.na(vc$var2[i]) && vc$var1[i] == "(Intercept)") {
      out <- rbind(out, row(model, paste0("var_", group_label(g)), vc$vcov[i]))
    } else if (is.na(vc$var2[i])) {
      out <- rbind(out, row(model, paste0("var_", group_label(g), "_", vc$var1[i]), vc$vcov[i]))
    } else {
      out <- rbind(out, row(model, paste0("cor_", group_label(g), "_", vc$var2[i]), vc$sdcor[i]))
    }
  }
  rbind(out, row(model, "loglik_reml", as.numeric(logLik(fit))))
}

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

  d <- k3[!is.na(k3$dropout) & !is.na(k3$alliance_early), ]
  g <- glm(dropout ~ alliance_early, family = binomial, data = d)
  v <- vcovCL(g, cluster = ~therapist_id, type = "HC1")
  se <- sqrt(diag(v))
  est <- coef(g)
  z <- qnorm(0.975)
  p <- 2 * pnorm(abs(est / se), lower.tail = FALSE)
  out$dropout <- rbind(
    row("dropout", c("Intercept", "alliance_early"), est, se, NA, p, est - z * se, est + z * se),
    row("dropout", "odds_ratio_alliance_early", exp(est[2]), NA, NA, p[2],
        exp(est[2] - z * se[2]), exp(est[2] + z * se[2])))
  do.call(rbind, out)
}

for (name in names(datasets)) {
  spec <- datasets[[name]]
  s <- read.csv(spec$file, stringsAsFactors = FALSE)
  s$outcome <- s[[spec$outcome]]
  s$alliance <- s[[spec$alliance]]
  result <- catalogue(s)
  rownames(result) <- NULL
  write.csv(result, sprintf("tests/reference/lme4_%s.csv", name), row.names = FALSE)
}
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("lmerTest", packageVersion("lmerTest")),
             paste("sandwich", packageVersion("sandwich")),
             paste("metafor", packageVersion("metafor"))), "tests/reference/versions.txt")
