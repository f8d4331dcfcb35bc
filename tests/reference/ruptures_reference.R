# Reference values for the rupture models (allianceanalysis.ruptures): ruptures and their repair
# detected here in R by the definitions in docs/models.md ("Ruptures and repair"), each case's
# first rupture as a time-varying state, the outcome model with lme4 (REML, Satterthwaite df)
# and the dropout hazard with glmer (a random intercept per therapist; Laplace, and adaptive
# Gauss-Hermite quadrature with 9 points as rupture_dropout_agq9).
#
# Run from the repository root:  Rscript tests/reference/ruptures_reference.R   (make reference)
# Writes tests/reference/ruptures_ors_srs.csv (columns as lme4_<dataset>.csv).
source("tests/reference/common.R")

s <- read_reference(datasets$ors_srs)
s <- s[order(s$client_id, s$session), ]

# Jacobson-Truax reliable change of a difference, SRS test-retest r = .54.
rated <- s[!is.na(s$alliance), ]
threshold <- qnorm(0.975) * sqrt(2) * sd(rated$alliance[!duplicated(rated$client_id)]) *
  sqrt(1 - 0.54)

# Each case's first rupture and, if it came back within 3 rated sessions, its repair session.
first_rupture <- do.call(rbind, lapply(split(rated, rated$client_id), function(c) {
  a <- c$alliance
  drop <- c(NA, head(a, -1) - a[-1])
  i <- which(!is.na(drop) & drop >= threshold)[1]
  if (is.na(i)) return(NULL)
  window <- (i + 1):min(i + 3, nrow(c))
  back <- if (i < nrow(c)) window[a[window] >= a[i - 1]] else integer(0)
  data.frame(client_id = c$client_id[1], rupture = c$session[i],
             repair = if (length(back)) c$session[back[1]] else NA)
}))

states <- function(f) {
  i <- match(f$client_id, first_rupture$client_id)
  r <- first_rupture$rupture[i]
  q <- first_rupture$repair[i]
  t <- f$session
  repaired <- !is.na(q) & t >= q
  f$rupture_unresolved <- as.numeric(!is.na(r) & t >= r & !repaired)
  f$rupture_open <- as.numeric(!is.na(r) & t > r & !is.na(q) & t < q)
  f$rupture_repaired <- as.numeric(repaired)
  f$rupture_unrepaired <- as.numeric(!is.na(r) & t > r & is.na(q))
  f
}

# Outcome: the course of change a cubic in log session, clients nested in therapists.
o <- states(s[!is.na(s$outcome), ])
o$case <- o$client_id
o$log_session <- log(o$session)
o$log_session_2 <- o$log_session^2
o$log_session_3 <- o$log_session^3
outcome_formula <- outcome ~ log_session + log_session_2 + log_session_3 + rupture_open +
  rupture_repaired + rupture_unrepaired + (1 | therapist_id/case)

p <- states(person_periods(s))
out <- rbind(
  lmm_rows("rupture_outcome", best_lmer(outcome_formula, o)),
  glmer_rows("rupture_dropout",
             event ~ session + rupture_unresolved + rupture_repaired + (1 | therapist_id), p),
  glmer_rows("rupture_dropout_agq9",
             event ~ session + rupture_unresolved + rupture_repaired + (1 | therapist_id), p,
             nAGQ = 9),
  row("ruptures", "threshold", threshold),
  row("ruptures", "first_ruptures", nrow(first_rupture)),
  row("ruptures", "first_repaired", sum(!is.na(first_rupture$repair))))
rownames(out) <- NULL
write.csv(out, "tests/reference/ruptures_ors_srs.csv", row.names = FALSE)
