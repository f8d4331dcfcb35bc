# lavaan syntax of the within-person models, shared by tests/reference/within_person_reference.R
# (the reference values) and benchmarks/lavaan_fit.R (the peer in make bench-within).

# The multilevel latent covariate model (Ludtke et al., 2008): outcome_final on alliance_early
# at both levels (bw, bb) and on each of `predictors` with one coefficient at both levels.
latent <- function(predictors) {
  g <- paste0(" + g_", predictors, "*", predictors, collapse = "")
  paste0("level: 1\n outcome_final ~ bw*alliance_early", g,
         "\nlevel: 2\n outcome_final ~ bb*alliance_early", g, "\n contextual := bb - bw\n")
}

# The RI-CLPM (Hamaker, Kuiper & Grasman, 2015; Mulder & Hamaker, 2021) of alliance a1..aT and
# outcome y1..yT, lagged paths equal over waves (`constrained`) or free, as lines of syntax.
riclpm_syntax <- function(constrained, waves) {
  lab <- function(name, t) if (constrained) name else paste0(name, "_t", t)
  lines <- c(paste("RIa =~", paste0("1*a", 1:waves, collapse = " + ")),
             paste("RIy =~", paste0("1*y", 1:waves, collapse = " + ")),
             paste0("wa", 1:waves, " =~ 1*a", 1:waves), paste0("wy", 1:waves, " =~ 1*y", 1:waves))
  for (t in 2:waves) {
    lines <- c(lines,
      sprintf("wa%d ~ %s*wa%d + %s*wy%d", t, lab("alliance_autoregression", t), t - 1,
              lab("outcome_to_alliance", t), t - 1),
      sprintf("wy%d ~ %s*wy%d + %s*wa%d", t, lab("outcome_autoregression", t), t - 1,
              lab("alliance_to_outcome", t), t - 1))
  }
  c(lines, sprintf("wa%d ~~ cov_within_t%d*wy%d", 1:waves, 1:waves, 1:waves),
    sprintf("wa%d ~~ var_within_alliance_t%d*wa%d", 1:waves, 1:waves, 1:waves),
    sprintf("wy%d ~~ var_within_outcome_t%d*wy%d", 1:waves, 1:waves, 1:waves),
    sprintf("a%d ~ mean_alliance_t%d*1", 1:waves, 1:waves),
    sprintf("y%d ~ mean_outcome_t%d*1", 1:waves, 1:waves),
    "RIa ~~ var_ri_alliance*RIa", "RIy ~~ var_ri_outcome*RIy", "RIa ~~ cov_ri*RIy",
    "RIa ~~ 0*wa1", "RIa ~~ 0*wy1", "RIy ~~ 0*wa1", "RIy ~~ 0*wy1")
}
