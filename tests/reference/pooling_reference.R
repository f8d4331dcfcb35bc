# Rubin's rules with R's mice::pool.scalar (mice 3.15.0), for tests/test_pooling.py. Run from the
# repository root; writes tests/reference/pooling.csv. Each case: m estimates and their
# squared standard errors (seeded draws), and the complete-data degrees of freedom.
suppressPackageStartupMessages(library(mice))
set.seed(20261205)
cases <- list(
  list(name = "small_m", m = 3, dfcom = 20),
  list(name = "typical", m = 20, dfcom = 200),
  list(name = "large_fmi", m = 10, dfcom = 50),
  list(name = "z_based", m = 20, dfcom = Inf),
  list(name = "no_between", m = 5, dfcom = 100)
)
rows <- lapply(cases, function(case) {
  spread <- switch(case$name, large_fmi = 2, no_between = 0, 0.3)
  q <- 1 + rnorm(case$m, sd = spread)
  u <- 0.1 + runif(case$m, 0, 0.02)
  p <- pool.scalar(q, u, n = case$dfcom + 1, k = 1)
  data.frame(case = case$name, j = seq_len(case$m), q = q, u = u, dfcom = case$dfcom,
             qbar = p$qbar, t = p$t, b = p$b, df = p$df, riv = p$r,
             fmi = p$fmi)
})
write.csv(do.call(rbind, rows), "tests/reference/pooling.csv", row.names = FALSE)
