//! The human view of `metrics.privacy` (what `aegis assess privacy` measured): one line per output policy
//! and attack. It reads the JSON the report carries, like the robustness view, so every renderer shows the
//! same figures.

use std::io::{self, Write};

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Write the membership-inference summary.
pub(crate) fn render(r: &Value, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "members {} / non-members {} given; {} of each attacked ({} non-members calibrate the population attack)",
        r["members_given"], r["non_members_given"], r["balanced_rows"], r["population_rows"]
    )?;
    writeln!(
        out,
        "accuracy on members {:.1}%, on non-members {:.1}%\n",
        100.0 * f(&r["member_accuracy"]),
        100.0 * f(&r["non_member_accuracy"])
    )?;
    writeln!(
        out,
        "{:<24} {:<11} {:>7} {:>10} {:>12} {:>10}",
        "output", "attack", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "advantage"
    )?;
    for p in r["policies"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let policy = p["policy"].as_str().unwrap_or("?");
        for (name, m) in [
            ("loss", &p["loss"]),
            ("confidence", &p["confidence"]),
            ("population", &p["population"]["metrics"]),
        ] {
            writeln!(
                out,
                "{:<24} {:<11} {:>7.3} {:>9.1}% {:>11.1}% {:>10.3}",
                policy,
                name,
                f(&m["auc"]),
                100.0 * f(&m["tpr_at_1pct_fpr"]),
                100.0 * f(&m["tpr_at_01pct_fpr"]),
                f(&m["advantage"])
            )?;
        }
    }
    writeln!(out)
}
