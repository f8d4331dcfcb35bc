# The lme4 formula language on public data, for tests/test_formula.py: fixed parts with
# factors, interactions, I(), log(), poly(), scale(), relevel(); uncorrelated (||), crossed and
# nested random effects; rows with missing values dropped; a rank-deficient fixed part.
# Run from the repository root. Writes the data it uses (tests/reference/data/README.md):
#   data/hsb.csv        the High School and Beyond subsample of Raudenbush & Bryk (2002), from
#                       nlme's MathAchieve with each school's Sector from MathAchSchool
#   data/penicillin.csv lme4's Penicillin (Davies & Goldsmith, 1972)
# and the reference values:
#   formula_model_matrix.csv  each model's fixed-effects matrix as lme4 used it (getME(fit, "X"),
#                             after dropping incomplete rows and aliased columns): per column
#                             its sum, sum of squares and sum weighted by row position i / n
#   formula_lme4.csv          lmer/lmerTest (REML, Satterthwaite) tidy rows of every model
source("tests/reference/common.R")
suppressPackageStartupMessages(library(nlme))

school <- as.data.frame(MathAchSchool)
hsb <- as.data.frame(MathAchieve)[, c("School", "Minority", "Sex", "SES", "MathAch", "MEANSES")]
hsb$Sector <- as.character(school$Sector[match(hsb$School, school$School)])
hsb$School <- as.character(hsb$School)
write.csv(hsb, "tests/reference/data/hsb.csv", row.names = FALSE)
write.csv(lme4::Penicillin, "tests/reference/data/penicillin.csv", row.names = FALSE)

hsb <- read.csv("tests/reference/data/hsb.csv")
penicillin <- read.csv("tests/reference/data/penicillin.csv")
sleep <- read.csv("tests/reference/data/sleepstudy.csv")
# Claus et al. (2020), as the workflow's session table holds it (tests/test_public_study.py: a
# custom model run through `allianceanalysis run`): outcome = BDI-II, session = time
claus <- read.csv("tests/reference/data/claus_2020.csv")
claus <- data.frame(outcome = claus$bdi, session = claus$time, treatment = claus$treatment,
                    client_id = claus$id)
# missing values, placed as tests/test_formula.py places them: SES in every 37th row, Sex in
# every 101st
hsb_na <- hsb
hsb_na$SES[seq_len(nrow(hsb)) %% 37 == 0] <- NA
hsb_na$Sex[seq_len(nrow(hsb)) %% 101 == 0] <- NA

models <- list(
  factors_interaction = list(MathAch ~ SES * MEANSES + Sex + Minority + Sector + (SES | School), hsb),
  transformations = list(MathAch ~ I(SES^2) + log(SES + 4) + relevel(factor(Sex), ref = "Male") +
                           (1 | School), hsb),
  poly_scale = list(MathAch ~ poly(SES, 2) + scale(MEANSES) + Sex:SES + (1 | School), hsb),
  crossing_uncorrelated = list(MathAch ~ (SES + Sex + Minority)^2 + (1 | School) +
                                 (0 + SES | School), hsb),
  missing_rows = list(MathAch ~ SES + Sex + (1 | School), hsb_na),
  rank_deficient = list(MathAch ~ SES + scale(SES, scale = FALSE) + (1 | School), hsb),
  double_bar = list(Reaction ~ Days + (Days || Subject), sleep),
  crossed = list(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin),
  claus_custom = list(outcome ~ session * treatment + (1 | client_id), claus)
)

group_label <- function(g) sub("_id$", "", sub("\\.[0-9]+$", "", sub(":.*", "", g)))
matrices <- list()
fits <- list()
for (name in names(models)) {
  fit <- best_lmer(models[[name]][[1]], models[[name]][[2]])
  x <- getME(fit, "X")
  w <- seq_len(nrow(x)) / nrow(x)
  matrices[[name]] <- data.frame(
    model = name, term = sub("\\(Intercept\\)", "Intercept", colnames(x)), n_rows = nrow(x),
    sum = colSums(x), sum_squares = colSums(x^2), sum_weighted = colSums(x * w))
  fits[[name]] <- lmm_rows(name, fit)
}
write.csv(do.call(rbind, matrices), "tests/reference/formula_model_matrix.csv", row.names = FALSE)
write.csv(do.call(rbind, fits), "tests/reference/formula_lme4.csv", row.names = FALSE)
