# The within-person methods (docs/models.md, "Within or between?") in R, for
# tests/test_within_person.py:
#   alliance_disaggregated_latent  lavaan's two-level SEM (cluster = "therapist_id",
#                                  fixed.x = FALSE) of the client table of data/contextual.csv
#                                  (k = 3, eligible cases), without and with covariates
#                                  (diagnosis, age; one coefficient at both levels), and of
#                                  lavaan's own Demo.twolevel (y1 on x1 and x2: public data)
#   alliance_next_session_detrended  lme4/lmerTest on session pairs of data/within_person.csv,
#                                  the detrended states computed here by lm() per client
#   riclpm                         lavaan's RI-CLPM (Mulder & Hamaker, 2021) of the first six
#                                  sessions of data/within_person.csv, constrained and not,
#                                  missing = "ML"
# Run from the repository root; writes tests/reference/within_person.csv and
# tests/reference/data/demo_twolevel.csv.
source("tests/reference/common.R")
suppressPackageStartupMessages(library(lavaan))
source("tests/reference/within_person_syntax.R")

sem_rows <- function(model, fit, keep) {
  pe <- parameterEstimates(fit)
  pe$name <- ifelse(pe$label != "", pe$label,
                    paste0(pe$lhs, pe$op, pe$rhs, ifelse(pe$level == 2, "@1", "")))
  pe <- pe[pe$name %in% keep & !duplicated(pe$name), ]
  rbind(row(model, pe$name, pe$est, pe$se, NA, pe$pvalue, pe$ci.lower, pe$ci.upper),
        row(model, "loglik", fitMeasures(fit, "logl")))
}

# 1. The latent covariate model.
s <- read.csv("tests/reference/data/contextual.csv", stringsAsFactors = FALSE)
s$outcome <- s$ors
s$alliance <- s$srs
clients <- client_table(s, 3)
first <- s[!duplicated(s$client_id), ]
clients$diagnosis <- first$diagnosis[match(clients$client_id, first$client_id)]
clients$age <- first$age[match(clients$client_id, first$client_id)]
e <- clients[clients$eligible, ]
e$diagnosisdepression <- as.numeric(e$diagnosis == "depression")
e$diagnosisother <- as.numeric(e$diagnosis == "other")

keep <- function(predictors) c("bw", "bb", "contextual", paste0("g_", predictors),
                               "outcome_final~~outcome_final", "outcome_final~~outcome_final@1",
                               "alliance_early~~alliance_early", "alliance_early~~alliance_early@1")
plain <- c("outcome_intake")
covs <- c("outcome_intake", "diagnosisdepression", "diagnosisother", "age")
out <- rbind(
  sem_rows("latent", sem(latent(plain), e, cluster = "therapist_id", fixed.x = FALSE), keep(plain)),
  sem_rows("latent_covariates", sem(latent(covs), e, cluster = "therapist_id", fixed.x = FALSE),
           keep(covs)))

demo <- Demo.twolevel[, c("cluster", "y1", "x1", "x2")]
write.csv(demo, "tests/reference/data/demo_twolevel.csv", row.names = FALSE)
names(demo) <- c("therapist_id", "outcome_final", "alliance_early", "outcome_intake")
out <- rbind(out, sem_rows("latent_demo_twolevel",
                           sem(latent(plain), demo, cluster = "therapist_id", fixed.x = FALSE),
                           keep(plain)))

# 2. Detrended states on session pairs.
p <- read.csv("tests/reference/data/within_person.csv", stringsAsFactors = FALSE)
p <- p[order(p$client_id, p$session), ]
detrend <- function(v, t) {
  ok <- !is.na(v)
  r <- rep(NA_real_, length(v))
  if (sum(ok) >= 3 && length(unique(t[ok])) > 1) r[ok] <- resid(lm(v[ok] ~ t[ok]))
  r
}
by_client <- split(seq_len(nrow(p)), p$client_id)
p$alliance_detrended <- NA_real_
p$outcome_detrended <- NA_real_
for (rows in by_client) {
  p$alliance_detrended[rows] <- detrend(p$srs[rows], p$session[rows])
  p$outcome_detrended[rows] <- detrend(p$ors[rows], p$session[rows])
}
p$alliance_client_mean <- ave(p$srs, p$client_id, FUN = function(x) mean(x, na.rm = TRUE))
p$outcome_client_mean <- ave(p$ors, p$client_id, FUN = function(x) mean(x, na.rm = TRUE))
p$alliance_within <- p$srs - p$alliance_client_mean
p$outcome_within <- p$ors - p$outcome_client_mean
p$outcome <- p$ors
n <- nrow(p)
nxt <- c(2:n, n)
p$outcome_next <- p$ors[nxt]
pairs <- p[c(p$client_id[-1] == p$client_id[-n], FALSE) & !is.na(p$ors) & !is.na(p$outcome_next) &
             !is.na(p$srs) & !is.na(p$alliance_detrended) & !is.na(p$outcome_detrended), ]
out <- rbind(
  out,
  lmm_rows("alliance_next_session_detrended", best_lmer(
    outcome_next ~ outcome_detrended + alliance_detrended + alliance_client_mean + session +
      (1 | client_id), pairs)),
  lmm_rows("alliance_next_session_same_sample", best_lmer(
    outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session +
      (1 | client_id), pairs)),
  lmm_rows("alliance_next_session_lag_raw", best_lmer(
    outcome_next ~ outcome + alliance_within + alliance_client_mean + session + (1 | client_id),
    pairs)))

# 3. The RI-CLPM over the first six sessions.
waves <- 6
p$wave <- ave(p$session, p$client_id, FUN = seq_along)
w <- p[p$wave <= waves, ]
wide <- data.frame(client_id = unique(w$client_id))
for (t in 1:waves) {
  at <- w[w$wave == t, ]
  wide[[paste0("a", t)]] <- at$srs[match(wide$client_id, at$client_id)]
  wide[[paste0("y", t)]] <- at$ors[match(wide$client_id, at$client_id)]
}
fit_names <- c("chisq", "df", "pvalue", "cfi", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "srmr",
               "logl")
for (constrained in c(TRUE, FALSE)) {
  model <- if (constrained) "riclpm" else "riclpm_unconstrained"
  fit <- lavaan(paste(riclpm_syntax(constrained, waves), collapse = "\n"), wide[, -1],
                missing = "ML", meanstructure = TRUE, int.ov.free = TRUE)
  pe <- parameterEstimates(fit)
  pe <- pe[pe$label != "" & !duplicated(pe$label), ]
  fm <- fitMeasures(fit, fit_names)
  out <- rbind(out, row(model, pe$label, pe$est, pe$se, NA, pe$pvalue, pe$ci.lower, pe$ci.upper),
               row(model, c("chisq", "cfi", "rmsea", "srmr", "loglik"),
                   fm[c("chisq", "cfi", "rmsea", "srmr", "logl")],
                   df = c(fm[["df"]], NA, NA, NA, NA), p_value = c(fm[["pvalue"]], NA, NA, NA, NA),
                   ci_low = c(NA, NA, fm[["rmsea.ci.lower"]], NA, NA),
                   ci_high = c(NA, NA, fm[["rmsea.ci.upper"]], NA, NA)))
  if (constrained) tied <- fit else free <- fit
}
lrt <- anova(tied, free)
out <- rbind(out, row("riclpm", "lrt_time_invariance", lrt$`Chisq diff`[2], NA, lrt$`Df diff`[2],
                      lrt$`Pr(>Chisq)`[2]))
write.csv(out, "tests/reference/within_person.csv", row.names = FALSE)
