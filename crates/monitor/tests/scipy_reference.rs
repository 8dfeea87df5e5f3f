//! Recomputes every number in `testdata/drift/expected.json` (written by `testdata/drift/make_reference.py`
//! with scipy and numpy) with aegis-monitor's functions and asserts agreement: p-values to 1e-9 relative,
//! other numbers to 1e-9 · max(1, |scipy|) (relative below 1e-3). Run with `--nocapture` to see the largest
//! deviation per block.
//!
//! The CSVs are read by a tiny reader of our own (header row, comma-separated, no quoting), so this test does
//! not depend on aegis-data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aegis_monitor::correction::{adjust, Correction};
use aegis_monitor::divergence::{
    bin_counts, chi_square, jensen_shannon, normalized_wasserstein, psi, quantile_edges,
};
use aegis_monitor::ks::{ks_2samp, ks_pvalue, Method};
use aegis_monitor::special::kolmogn_sf;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/drift")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Column name → raw string cells.
fn read_csv(name: &str) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let mut cols: BTreeMap<String, Vec<String>> =
        header.iter().map(|h| (h.clone(), Vec::new())).collect();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "ragged row in {name}: {line}");
        for (h, c) in header.iter().zip(cells) {
            cols.get_mut(h).unwrap().push(c.trim().to_string());
        }
    }
    cols
}

fn floats(cells: &[String]) -> Vec<f64> {
    cells.iter().map(|c| c.parse::<f64>().unwrap()).collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn fvec(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn uvec(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Tracks the largest deviation seen in a block.
#[derive(Default)]
struct Dev {
    worst: f64,
    at: String,
}

impl Dev {
    /// A number other than a p-value: |a - b| <= 1e-9 · max(1, |b|), relative below 1e-3.
    fn num(&mut self, what: &str, ours: f64, scipy: f64) {
        let scale = if scipy.abs() < 1e-3 {
            scipy.abs()
        } else {
            scipy.abs().max(1.0)
        };
        self.check(what, ours, scipy, scale);
    }

    /// A p-value: relative to 1e-9 (a scipy 0 must be 0 or below 1e-300 here).
    fn p(&mut self, what: &str, ours: f64, scipy: f64) {
        self.check(what, ours, scipy, scipy.abs());
    }

    fn check(&mut self, what: &str, ours: f64, scipy: f64, scale: f64) {
        let diff = (ours - scipy).abs();
        let rel = if scale > 0.0 {
            diff / scale
        } else if ours.abs() < 1e-300 {
            0.0
        } else {
            f64::INFINITY
        };
        assert!(
            rel <= 1e-9,
            "{what}: ours {ours:e}, scipy {scipy:e}, deviation {rel:e}"
        );
        if rel > self.worst {
            self.worst = rel;
            self.at = what.to_string();
        }
    }

    fn report(&self, block: &str) {
        eprintln!(
            "{block}: largest deviation {:.3e} ({})",
            self.worst, self.at
        );
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Auto => "auto",
        Method::Exact => "exact",
        Method::Asymptotic => "asymptotic",
    }
}

fn parse_method(s: &str) -> Method {
    match s {
        "auto" => Method::Auto,
        "exact" => Method::Exact,
        "asymp" | "asymptotic" => Method::Asymptotic,
        other => panic!("unknown method {other}"),
    }
}

#[test]
fn columns_match_scipy() {
    let exp = expected();
    let reference = read_csv("reference.csv");
    let current = read_csv("current.csv");
    let bins = exp["bins"].as_u64().unwrap() as usize;
    let mut dev = Dev::default();
    let columns = exp["columns"].as_object().unwrap();
    assert_eq!(columns.len(), 7);
    for (name, col) in columns {
        let (r, c) = (&reference[name], &current[name]);
        if col["kind"] == "numeric" {
            let (a, b) = (floats(r), floats(c));
            for (key, method) in [("ks", Method::Auto), ("ks_asymptotic", Method::Asymptotic)] {
                let ks = ks_2samp(&a, &b, method).unwrap();
                let want = &col[key];
                dev.num(
                    &format!("{name} {key} statistic"),
                    ks.statistic,
                    f(&want["statistic"]),
                );
                dev.p(
                    &format!("{name} {key} pvalue"),
                    ks.pvalue,
                    f(&want["pvalue"]),
                );
                assert_eq!(
                    method_name(ks.method),
                    want["method"].as_str().unwrap(),
                    "{name} {key}"
                );
            }
            let mut a_sorted = a.clone();
            a_sorted.sort_by(f64::total_cmp);
            let mut b_sorted = b.clone();
            b_sorted.sort_by(f64::total_cmp);
            let edges = quantile_edges(&a_sorted, bins);
            // serde_json's default float parser may be 1 ulp off, so the edges are compared as numbers;
            // the bin counts below are compared exactly.
            let want_edges = fvec(&col["edges"]);
            assert_eq!(edges.len(), want_edges.len(), "{name} edges");
            for (i, (e, w)) in edges.iter().zip(&want_edges).enumerate() {
                dev.num(&format!("{name} edge {i}"), *e, *w);
            }
            let (rc, cc) = (bin_counts(&a, &edges), bin_counts(&b, &edges));
            assert_eq!(
                rc,
                uvec(&col["reference_counts"]),
                "{name} reference counts"
            );
            assert_eq!(cc, uvec(&col["current_counts"]), "{name} current counts");
            dev.num(
                &format!("{name} psi"),
                psi(&rc, &cc).unwrap(),
                f(&col["psi"]),
            );
            dev.num(
                &format!("{name} js"),
                jensen_shannon(&rc, &cc).unwrap(),
                f(&col["jensen_shannon"]),
            );
            dev.num(
                &format!("{name} wasserstein"),
                normalized_wasserstein(&a_sorted, &b_sorted).unwrap(),
                f(&col["wasserstein_normalized"]),
            );
        } else {
            let cats: Vec<String> = col["categories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let count = |cells: &[String]| -> Vec<u64> {
                cats.iter()
                    .map(|k| cells.iter().filter(|c| *c == k).count() as u64)
                    .collect()
            };
            let (rc, cc) = (count(r), count(c));
            assert_eq!(
                rc,
                uvec(&col["reference_counts"]),
                "{name} reference counts"
            );
            assert_eq!(cc, uvec(&col["current_counts"]), "{name} current counts");
            let chi = chi_square(&rc, &cc).unwrap();
            let want = &col["chi_square"];
            assert_eq!(chi.dof as u64, want["dof"].as_u64().unwrap());
            dev.num(
                &format!("{name} chi2 statistic"),
                chi.statistic,
                f(&want["statistic"]),
            );
            dev.p(
                &format!("{name} chi2 pvalue"),
                chi.pvalue,
                f(&want["pvalue"]),
            );
            dev.num(
                &format!("{name} psi"),
                psi(&rc, &cc).unwrap(),
                f(&col["psi"]),
            );
            dev.num(
                &format!("{name} js"),
                jensen_shannon(&rc, &cc).unwrap(),
                f(&col["jensen_shannon"]),
            );
        }
    }
    dev.report("columns");
}

#[test]
fn verdicts_differ_across_columns() {
    // The pair is built so that some columns drift and some do not (at α = 0.05 after BH).
    let exp = expected();
    let p = fvec(&exp["corrections"]["benjamini_hochberg"]);
    let columns = exp["columns"].as_object().unwrap();
    let pv = |c: &str| {
        let col = &columns[c];
        if col["kind"] == "numeric" {
            f(&col["ks"]["pvalue"])
        } else {
            f(&col["chi_square"]["pvalue"])
        }
    };
    for shifted in ["mean_shift", "scale_shift", "int_ties", "cat_shift"] {
        assert!(pv(shifted) < 1e-6, "{shifted} should drift");
    }
    for same in ["normal_same", "lognormal", "cat_same"] {
        assert!(pv(same) > 0.05, "{same} should not drift");
    }
    assert!(!p.is_empty());
}

#[test]
fn small_ks_cases_match_scipy() {
    let exp = expected();
    let mut dev = Dev::default();
    for case in exp["ks_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (fvec(&case["a"]), fvec(&case["b"]));
        let ks = ks_2samp(&a, &b, parse_method(case["method"].as_str().unwrap())).unwrap();
        let want = &case["expected"];
        dev.num(
            &format!("{name} statistic"),
            ks.statistic,
            f(&want["statistic"]),
        );
        dev.p(&format!("{name} pvalue"), ks.pvalue, f(&want["pvalue"]));
        assert_eq!(
            method_name(ks.method),
            want["method"].as_str().unwrap(),
            "{name}"
        );
    }
    dev.report("ks_cases");
}

#[test]
fn kolmogorov_branches_match_scipy() {
    let exp = expected();
    let mut dev = Dev::default();
    for pt in exp["kstwo_sf"].as_array().unwrap() {
        let (n, x) = (pt["n"].as_u64().unwrap(), f(&pt["x"]));
        dev.p(
            &format!("kstwo.sf({x}, {n})"),
            kolmogn_sf(n, x),
            f(&pt["sf"]),
        );
    }
    for pt in exp["ks_exact"].as_array().unwrap() {
        let (n1, n2, d) = (
            pt["n1"].as_u64().unwrap() as usize,
            pt["n2"].as_u64().unwrap() as usize,
            f(&pt["d"]),
        );
        let (p, m) = ks_pvalue(d, n1, n2, Method::Exact).unwrap();
        assert_eq!(m, Method::Exact);
        dev.p(&format!("exact p({d}; {n1}, {n2})"), p, f(&pt["pvalue"]));
    }
    dev.report("kstwo_sf + ks_exact");
}

#[test]
fn corrections_match_scipy() {
    let exp = expected();
    let c = &exp["corrections"];
    let p = fvec(&c["pvalues"]);
    let mut dev = Dev::default();
    for (key, method) in [
        ("bonferroni", Correction::Bonferroni),
        ("holm", Correction::Holm),
        ("benjamini_hochberg", Correction::BenjaminiHochberg),
    ] {
        let ours = adjust(&p, method);
        let want = fvec(&c[key]);
        assert_eq!(ours.len(), want.len());
        for (i, (o, w)) in ours.iter().zip(&want).enumerate() {
            dev.p(&format!("{key}[{i}]"), *o, *w);
        }
    }
    dev.report("corrections");
}
