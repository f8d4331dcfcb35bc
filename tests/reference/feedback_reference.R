# Reference values for the feedback models (allianceanalysis.feedback) on a simulated data set
# with clients randomised to feedback: the case conditions and client tables derived here in R by
# the definitions in docs/models.md, lme4 (REML, Satterthwaite df) and glm with
# sandwich::vcovCL.
#
# Run from the repository root:  Rscript tests/reference/feedback_reference.R   (make reference)
# Writes tests/reference/feedback_feedback.csv (columns as lme4_<dataset>.csv).
source("tests/reference/common.R")

s <- read.csv("tests/reference/data/feedback.csv", stringsAsFactors = FALSE)
s$outcome <- s$ors
s$alliance <- s$srs
s <- s[order(s$client_id, s$session), ]
first <- s[!duplicated(s$client_id), ]
condition <- first$condition[first$condition %in% c("feedback", "none")]
assigned <- data.frame(client_id = first$client_id[first$condition %in% c("feedback", "none")],
                       feedback = as.numeric(condition == "feedback"))

final <- merge(client_table(s, 1), assigned, by = "client_id")
final <- final[!is.na(final$outcome_intake) & !is.na(final$outcome_final), ]
early <- merge(client_table(s, 3), assigned, by = "client_id")

out <- rbind(
  lmm_rows("feedback_outcome",
           best_lmer(outcome_final ~ outcome_intake + feedback + (1 | therapist_id), final)),
  lmm_rows("feedback_alliance",
           best_lmer(alliance_early ~ feedback + (1 | therapist_id),
                     early[!is.na(early$alliance_early), ])))
d <- early[!is.na(early$dropout), ]
g <- glm(dropout ~ feedback, family = binomial, data = d)
v <- vcovCL(g, cluster = ~therapist_id, type = "HC1")
est <- coef(g)
se <- sqrt(diag(v))
z <- qnorm(0.975)
p <- 2 * pnorm(abs(est / se), lower.tail = FALSE)
out <- rbind(out,
  row("feedback_dropout", c("Intercept", "feedback"), est, se, NA, p, est - z * se, est + z * se),
  row("feedback_dropout", "odds_ratio_feedback", exp(est[2]), NA, NA, p[2],
      exp(est[2] - z * se[2]), exp(est[2] + z * se[2])))
rownames(out) <- NULL
write.csv(out, "tests/reference/feedback_feedback.csv", row.names = FALSE)
