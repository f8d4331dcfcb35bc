# Helpers shared by the reference scripts (sourced; run the scripts from the repository root).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

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
