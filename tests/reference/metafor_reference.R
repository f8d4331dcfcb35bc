# Reference values for the pooled analysis, computed with R's metafor and lme4 from the
# sessions in tests/reference/data/, deriving every variable here in R (docs/models.md).
#
# Run from the repository root:  Rscript tests/reference/metafor_reference.R   (make reference)
# Writes tests/reference/metafor_<analysis>.csv with columns model, term, estimate, std_error,
# df, p_value, ci_low, ci_high, for three analyses: the sites of each dataset, and the two
# datasets together. Software versions: tests/reference/versions.txt (lme4_reference.R).
source("tests/reference/common.R")
suppressPackageStartupMessages(library(metafor))

read_clients <- function(file, outcome, alliance) {
  s <- read.csv(file, stringsAsFactors = FALSE)
  s$outcome <- s[[outcome]]
  s$alliance <- s[[alliance]]
  s <- s[order(s$client_id, s$session), ]
  ids <- unique(s$client_id)
  at <- function(session, column) {
    rows <- s[s$session == session, ]
    rows[[column]][match(ids, rows$client_id)]
  }
  later <- s[s$session > 3 & !is.na(s$outcome), ]
  last <- later[!duplicated(later$client_id, fromLast = TRUE), ]
  out <- data.frame(client_id = ids, therapist_id = s$therapist_id[match(ids, s$client_id)],
                    site_id = s$site_id[match(ids, s$client_id)],
                    outcome_intake = at(1, "outcome"), alliance_early = at(3, "alliance"),
                    outcome_final = last$outcome[match(ids, last$client_id)])
  out[complete.cases(out[, c("outcome_intake", "alliance_early", "outcome_final")]), ]
}

partial_r <- function(d) {
  cor(resid(lm(alliance_early ~ outcome_intake, d)), resid(lm(outcome_final ~ outcome_intake, d)))
}

pool <- function(model, studies) {
  n <- sapply(studies, nrow)
  r <- sapply(studies, partial_r)
  z <- atanh(r)
  v <- 1 / (n - 4)
  fit <- rma(yi = z, vi = v, method = "REML", test = "knha",
             control = list(REMLf = TRUE, tol = 1e-12, threshold = 1e-12, maxiter = 10000))
  pred <- predict(fit)
  ci <- tanh(cbind(z - qnorm(0.975) * sqrt(v), z + qnorm(0.975) * sqrt(v)))
  rbind(
    row(model, paste0("study:", names(studies)), r, ci_low = ci[, 1], ci_high = ci[, 2]),
    row(model, "pooled_r", tanh(fit$b[1]), fit$se, fit$k - 1, fit$pval,
        tanh(fit$ci.lb), tanh(fit$ci.ub)),
    row(model, "prediction_interval", tanh(fit$b[1]), df = fit$k - 1,
        ci_low = tanh(pred$pi.lb), ci_high = tanh(pred$pi.ub)),
    row(model, "tau2", fit$tau2),
    row(model, "i2", fit$I2),
    row(model, "q", fit$QE, df = fit$k - 1, p_value = fit$QEp)
  )
}

one_stage <- function(studies) {
  standardised <- lapply(names(studies), function(name) {
    d <- studies[[name]]
    a <- resid(lm(alliance_early ~ outcome_intake, d))
    f <- resid(lm(outcome_final ~ outcome_intake, d))
    data.frame(study = name, therapist_id = d$therapist_id, alliance_resid = a / sd(a),
               final_resid = f / sd(f))
  })
  d <- do.call(rbind, standardised)
  m <- best_lmer(final_resid ~ alliance_resid + (1 | study/therapist_id), d)
  co <- coef(summary(m))
  rbind(row("one_stage", sub("\\(Intercept\\)", "Intercept", rownames(co)), co[, "Estimate"],
            co[, "Std. Error"]),
        row("one_stage", "loglik_reml", as.numeric(logLik(m))))
}

ors <- read_clients("tests/reference/data/ors_srs.csv", "ors", "srs")
phq <- read_clients("tests/reference/data/phq9_wai.csv", "phq9", "wai_sr")
by_site <- function(d) split(d, d$site_id)

write.csv(rbind(pool("pooled_sites", by_site(ors)), one_stage(by_site(ors))),
          "tests/reference/metafor_ors_srs_sites.csv", row.names = FALSE)
write.csv(rbind(pool("pooled_sites", by_site(phq)), one_stage(by_site(phq))),
          "tests/reference/metafor_phq9_wai_sites.csv", row.names = FALSE)
write.csv(rbind(pool("pooled_datasets", list(ors_srs = ors, phq9_wai = phq)),
                one_stage(list(ors_srs = ors, phq9_wai = phq))),
          "tests/reference/metafor_datasets.csv", row.names = FALSE)
