# Reliable change and clinical significance in base R, from the published formulas, for
# tests/test_clinical_significance.py. Run from the repository root:
#   Rscript tests/reference/clinical_significance_reference.R
# Writes tests/reference/clinical_significance_cases.csv (one row per case, method and cut-off)
# and clinical_significance_cutoffs.csv.
#
# Formulas (x1 pre, x2 post; M1, S1 pre mean and SD; M2, S2 post; r reliability):
#   JT  (Jacobson & Truax 1991):  (x2 - x1) / sqrt(2 * (S1 * sqrt(1 - r))^2)
#   GLN (Hsu 1989):               ((x2 - M1) - r * (x1 - M1)) / (S1 * sqrt(1 - r^2))
#   HLL (Hsu 1995):               ((x2 - M2) - r * (x1 - M1)) / (S1 * sqrt(1 - r^2))
#   EN  (Speer 1992):             (x2 - (r * (x1 - M1) + M1)) / (S1 * sqrt(1 - r))
#   HA  (Hageman & Arrindell 1999): ((x2 - x1) * rdd + (M2 - M1) * (1 - rdd)) /
#                                   (sqrt(rdd) * sqrt(2 * SE^2)),  SE = S1 * sqrt(1 - r),
#       rdd = (S1^2 r1 + S2^2 r2 - 2 S1 S2 r12) / (S1^2 + S2^2 - 2 S1 S2 r12),
#       r1 = (S1^2 - SE^2) / S1^2, r2 = (S2^2 - SE^2) / S2^2, r12 = cor(x1, x2).
# Critical values: 1.96 (two-sided .05), 1.65 for HA (one-sided .05, as Hageman & Arrindell).
# Cut-offs (Jacobson & Truax 1991; d = +1 when higher is better, -1 when lower is):
#   a = Mc + d * 2 Sc;  b = Mf - d * 2 Sf;  c = (Sc * Mf + Sf * Mc) / (Sc + Sf)
# and for HA the "true" cut-offs with Sc * sqrt(rc), Sf * sqrt(rf) in place of Sc, Sf.
# Categories: recovered = reliably improved, clinical before and functional after; improved
# = reliably improved otherwise; deteriorated = reliably worse; harmed = reliably worse,
# not clinical before and not functional after; unchanged otherwise. Clinical before: d * x1
# < d * cut-off; functional after: d * x2 > d * cut-off (a score at the cut-off is neither).
# For HA, functional after is clinical before and d * CSindiv > 1.65, clinical after is not
# clinical before and d * CSindiv < -1.65, CSindiv = (M2 + (x2 - M2) r2 - cut) / (sqrt(r2) SE),
# and harmed = reliably worse, not clinical before, clinical after.
#
# Data (tests/reference/data/; public, with their sources and licence in README.md there):
# claus_2020 (BDI-II, pre = time 1, post = time 4, reliability .801, functional M 7.69 SD 7.52,
# as in the clinicalsignificance package's vignettes) and jacobson_1989 (Dyadic Adjustment
# Scale, higher is better; reliability .96 and functional M 114.8, SD 17.8 are illustrative
# values, said to be Spanier's (1976), unconfirmed).

options(digits = 17)
methods <- c("jt", "gln", "hll", "en", "ha")

rci <- function(method, x1, x2, r) {
  M1 <- mean(x1); S1 <- sd(x1); M2 <- mean(x2); S2 <- sd(x2)
  se <- S1 * sqrt(1 - r)
  switch(method,
    jt = (x2 - x1) / sqrt(2 * se^2),
    gln = ((x2 - M1) - r * (x1 - M1)) / (S1 * sqrt(1 - r^2)),
    hll = ((x2 - M2) - r * (x1 - M1)) / (S1 * sqrt(1 - r^2)),
    en = (x2 - (r * (x1 - M1) + M1)) / se,
    ha = {
      r1 <- (S1^2 - se^2) / S1^2; r2 <- (S2^2 - se^2) / S2^2; r12 <- cor(x1, x2)
      rdd <- (S1^2 * r1 + S2^2 * r2 - 2 * S1 * S2 * r12) / (S1^2 + S2^2 - 2 * S1 * S2 * r12)
      ((x2 - x1) * rdd + (M2 - M1) * (1 - rdd)) / (sqrt(rdd) * sqrt(2 * se^2))
    })
}

cutoff <- function(type, mc, sc, mf, sf, d) {
  switch(type, a = mc + d * 2 * sc, b = mf - d * 2 * sf, c = (sc * mf + sf * mc) / (sc + sf))
}

analyse <- function(name, id, x1, x2, r, mf, sf, d) {
  mc <- mean(x1); sc <- sd(x1); se <- sc * sqrt(1 - r)
  rows <- list(); cuts <- list()
  for (method in methods) {
    z <- rci(method, x1, x2, r)
    crit <- if (method == "ha") 1.65 else 1.96
    improved <- d * z > crit; worse <- d * z < -crit
    for (type in c("a", "b", "c")) {
      if (method == "ha") {
        rc <- (sc^2 - se^2) / sc^2; rf <- (sf^2 - se^2) / sf^2
        r2 <- (sd(x2)^2 - se^2) / sd(x2)^2
        cut <- cutoff(type, mc, sc * sqrt(rc), mf, sf * sqrt(rf), d)
        cs <- (mean(x2) + (x2 - mean(x2)) * r2 - cut) / (sqrt(r2) * se)
        clin_pre <- d * x1 < d * cut
        func_post <- clin_pre & d * cs > crit
        clin_post <- !clin_pre & d * cs < -crit
        harmed <- worse & !clin_pre & clin_post
      } else {
        cut <- cutoff(type, mc, sc, mf, sf, d)
        clin_pre <- d * x1 < d * cut
        func_post <- d * x2 > d * cut
        harmed <- worse & !clin_pre & !func_post
      }
      recovered <- improved & clin_pre & func_post
      category <- ifelse(recovered, "recovered", ifelse(improved, "improved",
                  ifelse(harmed, "harmed", ifelse(worse, "deteriorated", "unchanged"))))
      rows[[length(rows) + 1]] <- data.frame(dataset = name, method = method, cutoff_type = type,
        id = id, pre = x1, post = x2, rci = z, category = category)
      cuts[[length(cuts) + 1]] <- data.frame(dataset = name, method = method,
        cutoff_type = type, cutoff = cut)
    }
  }
  list(cases = do.call(rbind, rows), cutoffs = do.call(rbind, cuts))
}

claus <- read.csv("tests/reference/data/claus_2020.csv")
pre <- claus[claus$time == 1, c("id", "bdi")]; post <- claus[claus$time == 4, c("id", "bdi")]
bdi <- na.omit(merge(pre, post, by = "id", suffixes = c("_pre", "_post")))
jac <- read.csv("tests/reference/data/jacobson_1989.csv")
das <- merge(jac[jac$time == "pre", c("subject", "das")], jac[jac$time == "post", c("subject", "das")],
             by = "subject", suffixes = c("_pre", "_post"))

results <- list(
  analyse("claus_2020_bdi", bdi$id, bdi$bdi_pre, bdi$bdi_post, 0.801, 7.69, 7.52, -1),
  analyse("jacobson_1989_das", das$subject, das$das_pre, das$das_post, 0.96, 114.8, 17.8, 1))
write.csv(do.call(rbind, lapply(results, `[[`, "cases")),
          "tests/reference/clinical_significance_cases.csv", row.names = FALSE)
write.csv(do.call(rbind, lapply(results, `[[`, "cutoffs")),
          "tests/reference/clinical_significance_cutoffs.csv", row.names = FALSE)
