//! Model extraction simulated against a trained victim: natural-data and Jacobian attackers copy it, an
//! attacker with no information does not, output policies change what the attacker can learn, and PRADA (with
//! δ calibrated on benign streams, as the paper sets it per model) notices the Jacobian stream but not natural
//! traffic.

use aegis_assess::extraction::{
    assess_extraction, render_human, ExtractionConfig, ExtractionReport, Strategy,
};
use aegis_core::{FeatureKind, FeatureSpec, Schema, Table};
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::output_policy::OutputPolicy;
use aegis_ml::rng::Rng;
use aegis_ml::train::{train, NoHooks, TrainConfig};
use aegis_ml::{Error as MlError, Model};

const D: usize = 8;
const K: usize = 3;
/// Weight of the sine term: how far the class boundaries bend away from planes.
const WIGGLE: f32 = 0.3;

/// Three classes over uniform rows of `[0, 1]^D`: the class is the argmax of three random linear scores, each
/// plus a sine of another random projection, so the boundaries are curved. Uniform natural data keeps the
/// distances between natural queries near-normal, the assumption PRADA rests on.
fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(99);
    let a: Vec<Vec<f32>> = (0..K)
        .map(|_| (0..D).map(|_| rng.normal()).collect())
        .collect();
    let b: Vec<Vec<f32>> = (0..K)
        .map(|_| (0..D).map(|_| rng.normal()).collect())
        .collect();
    let dot = |w: &[f32], x: &[f32]| w.iter().zip(x).map(|(u, v)| u * (v - 0.5)).sum::<f32>();
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(n * D);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f32> = (0..D).map(|_| rng.uniform()).collect();
        let scores: Vec<f32> = (0..K)
            .map(|c| dot(&a[c], &row) + WIGGLE * (3.0 * dot(&b[c], &row)).sin())
            .collect();
        y.push(aegis_ml::argmax_rows(&scores, K)[0]);
        x.extend(row);
    }
    (x, y)
}

fn schema() -> Schema {
    Schema {
        features: (0..D)
            .map(|j| FeatureSpec {
                name: format!("f{j}"),
                kind: FeatureKind::Continuous,
                min: 0.0,
                max: 1.0,
                immutable: false,
                eps: None,
            })
            .collect(),
        one_hot: vec![],
    }
}

fn victim() -> NativeModel {
    let (x, y) = data(3000, 1);
    let m = NativeModel::new(Arch::Mlp(vec![64]), D, K, 7).unwrap();
    train(
        &m,
        &x,
        &y,
        &TrainConfig {
            epochs: 60,
            batch_size: 32,
            lr: 5e-3,
            ..Default::default()
        },
        &mut NoHooks,
    )
    .unwrap();
    m
}

fn pool(n: usize) -> Table {
    let (features, labels) = data(n, 2);
    Table {
        columns: (0..D).map(|j| format!("f{j}")).collect(),
        features,
        labels: Some(labels),
        label_column: Some("y".into()),
        class_names: (0..K).map(|c| c.to_string()).collect(),
    }
}

fn config(
    strategies: Vec<Strategy>,
    policies: Vec<OutputPolicy>,
    budgets: Vec<usize>,
) -> ExtractionConfig {
    ExtractionConfig {
        budgets,
        strategies,
        policies,
        surrogate: Arch::Mlp(vec![64]),
        holdout: Some(300),
        benign_streams: 10,
        seed: 5,
        ..Default::default()
    }
}

fn run(model: &dyn Model, cfg: &ExtractionConfig) -> ExtractionReport {
    let report = assess_extraction(model, &pool(1000), &schema(), cfg, &mut |_| {}).unwrap();
    eprintln!("{}", render_human(&report));
    report
}

fn curve<'a>(
    r: &'a ExtractionReport,
    s: Strategy,
    policy: &str,
) -> &'a aegis_assess::extraction::Curve {
    r.curves
        .iter()
        .find(|c| c.strategy == s && c.policy == policy)
        .unwrap()
}

#[test]
fn natural_and_jacobian_attackers_copy_the_model_and_prada_sees_jacobian() {
    let m = victim();
    let r = run(
        &m,
        &config(
            vec![Strategy::Pool, Strategy::Jacobian],
            vec![OutputPolicy::Full],
            vec![20, 100, 300, 700, 1500],
        ),
    );
    assert!(r.victim_accuracy.unwrap() > 0.8, "{:?}", r.victim_accuracy);
    for s in [Strategy::Pool, Strategy::Jacobian] {
        let c = curve(&r, s, "full");
        let (first, last) = (c.points[0].fidelity, c.final_fidelity());
        assert!(last >= 0.85, "{s}: fidelity {last} at the largest budget");
        assert!(
            last > first,
            "{s}: fidelity does not rise: {first} → {last}"
        );
    }
    // Machine output parses back.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["curves"].as_array().unwrap().len(), 2);
    // The copy is reported.
    let findings = r.findings();
    assert!(findings.iter().any(|f| f.rule.as_str() == "AEG-EXT-001"));

    // PRADA, with δ calibrated on benign streams (the paper's per-model δ): an alarm on the Jacobian stream;
    // few alarms on other benign streams, at the calibrated and at the default δ.
    let jac = r
        .prada
        .iter()
        .find(|p| p.strategy == Strategy::Jacobian)
        .unwrap();
    assert!(
        jac.queries_to_alarm_calibrated.is_some(),
        "no PRADA alarm on the Jacobian stream: {jac:?}, benign {:?}",
        r.benign
    );
    assert!(
        r.benign.calibrated_false_alarm_rate <= 0.3 && r.benign.false_alarm_rate <= 0.3,
        "benign false-alarm rates {:?}",
        r.benign
    );
}

/// A model whose answer is a hash of the input: its labels carry no learnable information.
struct Hashed;

impl Model for Hashed {
    fn n_features(&self) -> usize {
        D
    }
    fn n_classes(&self) -> usize {
        K
    }
    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, MlError> {
        let mut out = vec![0.0; n * K];
        for (i, row) in x.chunks(D).enumerate().take(n) {
            let h = row.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
                (h ^ v.to_bits() as u64).wrapping_mul(0x1000_0000_01b3)
            });
            out[i * K + (h % K as u64) as usize] = 1.0;
        }
        Ok(out)
    }
    fn describe(&self) -> String {
        "hashed".into()
    }
}

#[test]
fn an_attacker_without_information_does_not_copy() {
    // Labels that are a hash of the input: nothing to learn.
    let r = run(
        &Hashed,
        &config(
            vec![Strategy::Pool],
            vec![OutputPolicy::Full],
            vec![100, 700],
        ),
    );
    let f = curve(&r, Strategy::Pool, "full").final_fidelity();
    assert!(f < 0.5, "fidelity {f} against a hash");
    assert!(!r
        .findings()
        .iter()
        .any(|f| f.rule.as_str() == "AEG-EXT-001"));

    // One query: the surrogate knows one class.
    let m = victim();
    let r = run(
        &m,
        &config(vec![Strategy::Pool], vec![OutputPolicy::Full], vec![1]),
    );
    let f = curve(&r, Strategy::Pool, "full").final_fidelity();
    assert!(f < 0.6, "fidelity {f} from one query");
}

#[test]
fn label_only_does_not_change_a_label_attacker_and_reverse_sigmoid_does_not_help() {
    let m = victim();
    let mut cfg = config(
        vec![Strategy::Pool, Strategy::Random],
        vec![OutputPolicy::Full, OutputPolicy::LabelOnly],
        vec![50, 300],
    );
    cfg.soft_labels = false;
    let r = run(&m, &cfg);
    for s in [Strategy::Pool, Strategy::Random] {
        let (full, label) = (curve(&r, s, "full"), curve(&r, s, "label"));
        for (a, b) in full.points.iter().zip(&label.points) {
            assert_eq!(
                a.fidelity, b.fidelity,
                "{s}: label-only changed a label attacker"
            );
        }
    }

    let rs = OutputPolicy::ReverseSigmoid {
        beta: 0.7,
        gamma: 0.3,
    };
    let cfg = config(
        vec![Strategy::Pool, Strategy::Random],
        vec![OutputPolicy::Full, rs.clone()],
        vec![50, 300],
    );
    let r = run(&m, &cfg);
    let rs_name = aegis_assess::extraction::policy_name(&rs);
    for s in [Strategy::Pool, Strategy::Random] {
        let (full, perturbed) = (curve(&r, s, "full"), curve(&r, s, &rs_name));
        eprintln!(
            "{s}: full {:?} reverse-sigmoid {:?}",
            full.points.iter().map(|p| p.fidelity).collect::<Vec<_>>(),
            perturbed
                .points
                .iter()
                .map(|p| p.fidelity)
                .collect::<Vec<_>>()
        );
        assert!(
            perturbed.final_fidelity() <= full.final_fidelity() + 0.02,
            "{s}: reverse sigmoid helped the attacker"
        );
    }
}

/// The figures for docs/BENCHMARKS.md: the default configuration on a 3000-row pool
/// (`cargo test -p aegis-assess --test extraction -- --ignored --nocapture`).
#[test]
#[ignore]
fn default_configuration_figures() {
    let m = victim();
    let cfg = ExtractionConfig {
        seed: 5,
        ..Default::default()
    };
    let report = assess_extraction(&m, &pool(3000), &schema(), &cfg, &mut |s| {
        eprintln!("… {s}")
    })
    .unwrap();
    eprintln!("{}", render_human(&report));
    for f in report.findings() {
        eprintln!("{} {}", f.rule, f.message);
    }
}

/// A held-out stream too short for PRADA to test once says so and reports no calibrated threshold; one long
/// enough is calibrated. Fewer than 50 held-out rows is no measurement at all.
#[test]
fn prada_on_streams_too_short_to_test_is_not_measured() {
    let m = victim();
    let short = ExtractionConfig {
        holdout: Some(60),
        ..config(vec![Strategy::Pool], vec![OutputPolicy::Full], vec![50])
    };
    let r = run(&m, &short);
    assert!(r.benign.calibrated_delta.is_none());
    assert!(
        r.notes.iter().any(|n| n.contains("PRADA never tested")),
        "{:?}",
        r.notes
    );
    let long = config(vec![Strategy::Pool], vec![OutputPolicy::Full], vec![50]);
    let r = run(&m, &long);
    assert!(r.benign.calibrated_delta.is_some());
    assert!(!r.notes.iter().any(|n| n.contains("PRADA never tested")));
    let tiny = ExtractionConfig {
        holdout: Some(20),
        ..long
    };
    let err = assess_extraction(&m, &pool(1000), &schema(), &tiny, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("not a measurement"), "{err}");
}
