# A logistic model written as an lme4 formula with factors, on public data, for
# tests/test_custom_models.py: lme4's VerbAgg (Vansteelandt, 2000: verbal aggression of 316
# people to 24 items; written to data/verbagg.csv with the response r2 as 0/1), fitted by
#   glmer  r2 ~ Anger + Gender + btype + situ + (1 | id)   Laplace, tight tolerances (common.R)
#   glm    r2 ~ Anger + Gender + btype + situ              R's glm, model-based SEs
# Run from the repository root; writes tests/reference/glmm_formula.csv.
source("tests/reference/common.R")

verbagg <- lme4::VerbAgg[, c("Anger", "Gender", "item", "id", "btype", "situ", "mode", "r2")]
verbagg$r2 <- as.integer(verbagg$r2 == "Y")
for (v in c("Gender", "item", "id", "btype", "situ", "mode")) verbagg[[v]] <- as.character(verbagg[[v]])
write.csv(verbagg, "tests/reference/data/verbagg.csv", row.names = FALSE)
data <- read.csv("tests/reference/data/verbagg.csv")

m <- glmer(r2 ~ Anger + Gender + btype + situ + (1 | id), data = data, family = binomial,
           control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                                  optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
co <- summary(m)$coefficients
out <- rbind(logit_rows("verbagg_glmer", co[, "Estimate"], co[, "Std. Error"]),
             row("verbagg_glmer", "var_id", getME(m, "theta")^2),
             row("verbagg_glmer", "loglik", as.numeric(logLik(m))))
g <- glm(r2 ~ Anger + Gender + btype + situ, data = data, family = binomial)
out <- rbind(out, logit_rows("verbagg_glm", coef(g), sqrt(diag(vcov(g)))))
write.csv(out, "tests/reference/glmm_formula.csv", row.names = FALSE)
