# Helpers shared by the reference scripts (sourced; run the scripts from the repository root).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(sandwich)
})

# The two reference data sets (simulated; tests/reference/README.md) and their instruments.
datasets <- list(
  ors_srs = list(file = "tests/reference/data/ors_srs.csv", outcome = "ors", alliance = "srs"),
  phq9_wai = list(file = "tests/reference/data/phq9_wai.csv", outcome = "phq9", alliance = "wai_sr")
)

# lme4's default optimiser can stop early at a boundary (seen in the one-stage model of
# metafor_reference.R: REML deviance 1814.9 against 1813.5); every model is fitted with three
# optimisers and the best REML criterion kept, as lme4's allFit() advises.
best_lmer <- function(formula, data) {
  fits <- lapply(c("nloptwrap", "bobyqa", "Nelder_Mead"), function(o)
    suppressMessages(suppressWarnings(
      lmerTest::lmer(formula, data, REML = TRUE, control = lmerControl(optimizer = o)))))
  fits[[which.min(sapply(fits, function(m) deviance(m, REML = TRUE)))]]
}

# One tidy row per term, in the columns the reference files use.
row <- function(model, term, estimate, std_error = NA, df = NA, p_value = NA,
                ci_low = NA, ci_high = NA) {
  data.frame(model = model, term = term, estimate = estimate, std_error = std_error, df = df,
             p_value = p_value, ci_low = ci_low, ci_high = ci_high)
}

# The client table of docs/models.md ("Derived variables") at early session k.
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

# Tidy rows of a mixed model: fixed effects (Satterthwaite df), variance components, REML loglik.
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

# A reference data set's sessions, with its instruments' columns also as outcome and alliance.
read_reference <- function(spec) {
  s <- read.csv(spec$file, stringsAsFactors = FALSE)
  s$outcome <- s[[spec$outcome]]
  s$alliance <- s[[spec$alliance]]
  s
}

# Tidy rows of a logistic model from its coefficients and standard errors: Wald z intervals and
# p-values, and an odds-ratio row per predictor.
logit_rows <- function(model, est, se) {
  z <- qnorm(0.975)
  p <- 2 * pnorm(abs(est / se), lower.tail = FALSE)
  terms <- sub("\\(Intercept\\)", "Intercept", names(est))
  rbind(row(model, terms, est, se, NA, p, est - z * se, est + z * se),
        row(model, paste0("odds_ratio_", terms[-1]), exp(est[-1]), NA, NA, p[-1],
            exp(est[-1] - z * se[-1]), exp(est[-1] + z * se[-1])))
}

# A logistic regression with standard errors clustered by therapist (sandwich::vcovCL, HC1).
clustered_logit_rows <- function(model, formula, data) {
  g <- glm(formula, family = binomial, data = data)
  v <- vcovCL(g, cluster = data$therapist_id, type = "HC1")  # data: complete rows only
  logit_rows(model, coef(g), sqrt(diag(v)))
}

# A logistic regression with a random intercept per therapist: glmer, Laplace (lme4's default),
# with the inner (PIRLS) and outer tolerances tightened: glmer's defaults stop the inner
# iterations at a relative 1e-7, which moves its estimates by about 1e-4 from the optimum.
glmer_rows <- function(model, formula, data, nAGQ = 1) {
  m <- glmer(formula, data = data, family = binomial, nAGQ = nAGQ,
             control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                                    optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
  co <- summary(m)$coefficients
  rbind(logit_rows(model, co[, "Estimate"], co[, "Std. Error"]),
        row(model, "var_therapist", getME(m, "theta")^2),
        row(model, "loglik", as.numeric(logLik(m))))
}

# The person-periods of the discrete-time dropout model (docs/models.md, "Dropout risk after each
# session"): one row per session at which the case was at risk of dropping out after it.
person_periods <- function(s) {
  s <- s[order(s$client_id, s$session), ]
  first_rated <- s[!is.na(s$alliance), ]
  first_rated <- first_rated[!duplicated(first_rated$client_id), ]
  s$first_session <- first_rated$session[match(s$client_id, first_rated$client_id)]
  s$alliance_first <- ifelse(!is.na(s$first_session) & s$session >= s$first_session,
                             first_rated$alliance[match(s$client_id, first_rated$client_id)], NA)
  s$alliance_change <- s$alliance - s$alliance_first
  intake <- s[s$session == 1, ]
  s$outcome_change <- s$outcome - intake$outcome[match(s$client_id, intake$client_id)]
  last <- !duplicated(s$client_id, fromLast = TRUE)
  dropped <- !is.na(s$end_status) & s$end_status == "dropout"
  s$event <- as.integer(last & dropped)
  s[!last | dropped, ]
}
