# Reference values for the feedback models (allianceanalysis.feedback) on a simulated data set
# with clients randomised to feedback: the case conditions and client tables derived here in R by
# the definitions in docs/models.md, lme4 (REML, Satterthwaite df; glmer for dropout).
#
# Run from the repository root:  Rscript tests/reference/feedback_reference.R   (make reference)
# Writes tests/reference/feedback_feedback.csv (columns as lme4_<dataset>.csv).
source("tests/reference/common.R")

s <- read_reference(list(file = "tests/reference/data/feedback.csv", outcome = "ors",
                         alliance = "srs"))
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
out <- rbind(out, glmer_rows("feedback_dropout", dropout ~ feedback + (1 | therapist_id),
                             early[!is.na(early$dropout), ]))
rownames(out) <- NULL
write.csv(out, "tests/reference/feedback_feedback.csv", row.names = FALSE)
