# A model whose therapist level is dropped (fewer than two therapists) is R's lm: this fits
# lm(dist ~ speed) to R's cars data (tests/reference/data/cars.csv, written from R's datasets
# package with write.csv) and writes the coefficients, their inference and the REML
# log-likelihood to tests/reference/lm_cars.csv. Run from the repository root.
fit <- lm(dist ~ speed, data = read.csv("tests/reference/data/cars.csv"))
s <- summary(fit)$coefficients
ci <- confint(fit)
out <- data.frame(term = c("Intercept", "speed"), estimate = s[, 1], std_error = s[, 2],
                  df = fit$df.residual, p_value = s[, 4], ci_low = ci[, 1], ci_high = ci[, 2])
out <- rbind(out, data.frame(term = c("var_residual", "loglik_reml"),
                             estimate = c(summary(fit)$sigma^2, logLik(fit, REML = TRUE)),
                             std_error = NA, df = NA, p_value = NA, ci_low = NA, ci_high = NA))
write.csv(out, "tests/reference/lm_cars.csv", row.names = FALSE)
