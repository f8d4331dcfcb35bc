# lme4's own public data sets fitted with lme4/lmerTest (REML, Satterthwaite), for
# tests/test_engine_formulas.py: random-effect terms written as lme4 users write them.
# Run from the repository root; writes tests/reference/lme4_public.csv. The data are lme4's
# sleepstudy (Belenky et al., 2003) and Pastes (Davies & Goldsmith, 1972), written from the
# lme4 package (GPL (>= 2)) with write.csv (tests/reference/data/README.md).
source("tests/reference/common.R")

sleep <- read.csv("tests/reference/data/sleepstudy.csv")
pastes <- read.csv("tests/reference/data/pastes.csv")
group_label <- function(g) sub("batch:cask", "cask", g)
out <- rbind(
  lmm_rows("sleepstudy", best_lmer(Reaction ~ Days + (Days | Subject), sleep)),
  lmm_rows("pastes", best_lmer(strength ~ 1 + (1 | batch) + (1 | batch:cask), pastes)))
write.csv(out, "tests/reference/lme4_public.csv", row.names = FALSE)
