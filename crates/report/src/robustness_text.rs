//! The human view of `metrics.robustness` (what `aegis assess robustness` measured): the robust-accuracy
//! table over eps in both units, the most changed features, per-class accuracy and example rows. It reads
//! the JSON the report carries, as the HTML renderer does, so every renderer shows the same figures.

use std::io::{self, Write};

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => aegis_core::format_short(f(v)),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Write the robustness summary.
pub(crate) fn render(r: &Value, out: &mut dyn Write) -> io::Result<()> {
    let attacks: Vec<String> = list(&r["attacks"]).iter().map(s).collect();
    writeln!(out, "model     {}", s(&r["model"]))?;
    writeln!(
        out,
        "rows      {}   clean accuracy {:.1}%   attacks {}",
        r["rows"],
        f(&r["clean_accuracy"]) * 100.0,
        attacks.join(", ")
    )?;
    for skipped in list(&r["skipped"]) {
        writeln!(out, "skipped   {}: {}", s(&skipped[0]), s(&skipped[1]))?;
    }
    if r["default_attacks"] == Value::Bool(true) {
        writeln!(
            out,
            "attacks   the strongest set for this model (choose others with --attacks)"
        )?;
    }
    if r["bounds_inferred"] == Value::Bool(true) {
        writeln!(
            out,
            "bounds    inferred from the data (observed min and max; give --schema for real limits)"
        )?;
        let fixed: Vec<String> = list(&r["fixed_features"]).iter().map(s).collect();
        if !fixed.is_empty() {
            writeln!(
                out,
                "fixed     {} (one observed value: an attacker cannot move them under inferred bounds)",
                fixed.join(", ")
            )?;
        }
    }
    writeln!(
        out,
        "\n  eps        raw radius        % of range     robust accuracy   broken first by"
    )?;
    for p in list(&r["curve"]) {
        let by: Vec<String> = list(&p["broken_by"])
            .iter()
            .filter(|b| b[1].as_u64().unwrap_or(0) > 0)
            .map(|b| format!("{} {}", s(&b[0]), b[1]))
            .collect();
        let accuracy = f(&p["robust_accuracy"]);
        writeln!(
            out,
            "  {:<10} {:<17} {:<14} {:>6.1}%  {:<8} {}",
            s(&p["eps"]),
            span(&p["eps_raw"], 1.0, ""),
            span(&p["eps_range_fraction"], 100.0, "%"),
            accuracy * 100.0,
            bar(accuracy),
            by.join(", ")
        )?;
    }
    let features = list(&r["vulnerable_features"]);
    if !features.is_empty() {
        writeln!(
            out,
            "\nmost changed features (share of successful attacks, mean change / eps)"
        )?;
        for v in features.iter().take(5) {
            let name = s(&v["feature"]);
            writeln!(
                out,
                "  {name:<24} {:>5.0}%  {:.2}",
                f(&v["changed_in"]) * 100.0,
                f(&v["mean_relative_change"])
            )?;
        }
    }
    let classes = list(&r["classes"]);
    if classes.len() > 1 {
        writeln!(out, "\nper class: clean → robust at each eps")?;
        for c in classes {
            let robust: Vec<String> = list(&c["robust_accuracy"])
                .iter()
                .map(|a| format!("{:.0}%", f(a) * 100.0))
                .collect();
            let name = s(&c["class"]);
            writeln!(
                out,
                "  {name:<16} {:>4} rows  {:.0}% → {}",
                c["rows"],
                f(&c["clean_accuracy"]) * 100.0,
                robust.join(" / ")
            )?;
        }
    }
    for e in list(&r["examples"]).iter().take(3) {
        writeln!(
            out,
            "\nrow {} ({} → {}) at eps {} by {}:",
            e["row"],
            s(&e["label"]),
            s(&e["predicted"]),
            s(&e["eps"]),
            s(&e["attack"])
        )?;
        let changes = list(&e["changes"]);
        for c in changes.iter().take(8) {
            writeln!(out, "  {:<24} {} → {}", s(&c[0]), s(&c[1]), s(&c[2]))?;
        }
        if changes.len() > 8 {
            writeln!(out, "  … {} more", changes.len() - 8)?;
        }
    }
    writeln!(out)
}

/// `[a, b]` as `a` or `a–b`, scaled, with a unit.
fn span(pair: &Value, scale: f64, unit: &str) -> String {
    let (a, b) = (f(&pair[0]) * scale, f(&pair[1]) * scale);
    if (a - b).abs() <= 1e-6 * b.abs().max(1.0) {
        format!("{a:.4}{unit}")
    } else {
        format!("{a:.4}–{b:.4}{unit}")
    }
}

fn bar(fraction: f64) -> String {
    let filled = (fraction * 8.0).round().clamp(0.0, 8.0) as usize;
    format!("{}{}", "█".repeat(filled), "·".repeat(8 - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_each_eps_in_both_units_and_the_examples() {
        let r = serde_json::json!({
            "model": "onnx (gradient-checked) m.onnx", "rows": 10, "clean_accuracy": 0.9, "attacks": ["fgsm", "pgd"],
            "skipped": [["square", "no budget"]],
            "curve": [{"eps": 0.1f32, "robust_accuracy": 0.5, "broken_by": [["fgsm", 3], ["pgd", 1]],
                       "eps_raw": [0.1, 0.1], "eps_range_fraction": [0.05, 0.2]}],
            "vulnerable_features": [{"feature": "amount", "changed_in": 1.0, "mean_relative_change": 0.9}],
            "classes": [{"class": "legit", "rows": 5, "clean_accuracy": 1.0, "robust_accuracy": [0.6]},
                        {"class": "fraud", "rows": 5, "clean_accuracy": 0.8, "robust_accuracy": [0.4]}],
            "examples": [{"row": 3, "eps": 0.1f32, "attack": "fgsm", "label": "fraud", "predicted": "legit",
                          "changes": [["amount", 99.9f32, 100.4f32]]}]
        });
        let mut out = Vec::new();
        render(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "clean accuracy 90.0%",
            "skipped   square: no budget",
            "0.1000",
            "5.0000–20.0000%",
            "50.0%",
            "fgsm 3, pgd 1",
            "amount",
            "fraud",
            "row 3 (fraud → legit) at eps 0.1 by fgsm",
            "99.9 → 100.4",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("bounds    inferred"), "{text}");
        let mut inferred = r.clone();
        inferred["bounds_inferred"] = true.into();
        inferred["fixed_features"] = serde_json::json!(["country"]);
        inferred["default_attacks"] = true.into();
        let mut out = Vec::new();
        render(&inferred, &mut out).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(
            shown.contains("bounds    inferred from the data")
                && shown.contains("fixed     country")
                && shown.contains("the strongest set"),
            "{shown}"
        );
        // f32 values widened by serde_json print as written, never with f64 digits.
        assert!(!text.contains("0.1000000014"), "{text}");
    }
}
