//! Distribution functions: log-gamma, regularised incomplete gamma, chi-square and normal tails, and the
//! Kolmogorov distributions the KS test needs. (Stub: being written.)
