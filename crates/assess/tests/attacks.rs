//! Every attack against a trained model: it lowers accuracy when eps is large enough and not when eps is
//! tiny, it never leaves the eps ball or the schema, and it never changes an immutable feature.

use std::sync::atomic::{AtomicU64, Ordering};

use aegis_assess::attacks::fgsm::fgsm;
use aegis_assess::attacks::pgd::{apgd, pgd, ApgdLoss, ApgdParams, PgdParams};
use aegis_assess::attacks::{AttackInput, AttackOutput};
use aegis_assess::robustness::{
    evaluate, findings, AttackKind, Names, NoProgress, RobustnessConfig,
};
use aegis_assess::{Constraints, EpsUnits, Norm};
use aegis_core::{FeatureKind, FeatureSpec, Schema};
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::rng::Rng;
use aegis_ml::synthetic::blobs;
use aegis_ml::train::{train, NoHooks, TrainConfig};
use aegis_ml::{accuracy, Differentiable, Error as MlError, Model};
use candle_core::Tensor;

const D: usize = 8;

/// Two classes whose means differ by 0.3 in every feature, in [0, 1].
fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    blobs(n, D, 0.15, 0.1, seed)
}

fn model() -> NativeModel {
    let (x, y) = data(600, 1);
    let m = NativeModel::new(Arch::Mlp(vec![16]), D, 2, 3).unwrap();
    train(
        &m,
        &x,
        &y,
        &TrainConfig {
            epochs: 20,
            batch_size: 32,
            lr: 5e-3,
            ..Default::default()
        },
        &mut NoHooks,
    )
    .unwrap();
    m
}

fn schema(immutable: &[usize]) -> Schema {
    Schema {
        features: (0..D)
            .map(|j| FeatureSpec {
                name: format!("f{j}"),
                kind: FeatureKind::Continuous,
                min: 0.0,
                max: 1.0,
                immutable: immutable.contains(&j),
                eps: None,
            })
            .collect(),
        one_hot: vec![],
    }
}

type Attack = fn(&NativeModel, &AttackInput) -> AttackOutput;

fn attacks() -> Vec<(&'static str, Attack)> {
    vec![
        ("fgsm", |m, i| fgsm(m, i).unwrap()),
        ("pgd", |m, i| {
            pgd(
                m,
                i,
                &PgdParams {
                    steps: 20,
                    ..Default::default()
                },
            )
            .unwrap()
        }),
        ("apgd-ce", |m, i| {
            apgd(
                m,
                i,
                &ApgdParams {
                    steps: 30,
                    ..Default::default()
                },
                &ApgdLoss::CrossEntropy,
            )
            .unwrap()
        }),
        ("square", |m, i| {
            aegis_assess::attacks::square::square_attack(m, i, &Default::default()).unwrap()
        }),
        ("hsj", |m, i| {
            aegis_assess::attacks::hsj::hop_skip_jump(m, i, &Default::default()).unwrap()
        }),
    ]
}

#[test]
fn every_attack_breaks_the_model_at_large_eps_and_not_at_tiny_eps_and_stays_valid() {
    let m = model();
    let (x, y) = data(120, 9);
    let clean = accuracy(&m, &x, &y).unwrap();
    assert!(clean > 0.9, "clean accuracy {clean}");
    let c = Constraints::from_schema(&schema(&[]), EpsUnits::Raw, Norm::Linf);
    for (name, attack) in attacks() {
        for (eps, must_break) in [(0.25f32, true), (0.002, false)] {
            let input = AttackInput {
                x: &x,
                labels: &y,
                eps,
                constraints: &c,
                seed: 5,
            };
            let out = attack(&m, &input);
            assert!(
                c.contains(&x, &out.x_adv, eps),
                "{name} left the ball at eps {eps}"
            );
            let adv = accuracy(&m, &out.x_adv, &y).unwrap();
            if must_break {
                assert!(
                    adv < clean - 0.3,
                    "{name} at eps {eps}: accuracy {clean} -> {adv}"
                );
            } else {
                assert!(
                    adv > clean - 0.05,
                    "{name} at tiny eps {eps}: accuracy {clean} -> {adv}"
                );
            }
        }
    }
}

#[test]
fn immutable_features_never_change_and_integers_stay_whole() {
    let m = model();
    let (x, y) = data(60, 10);
    let mut s = schema(&[0, 1, 2, 3]);
    s.features[5].kind = FeatureKind::Integer;
    s.features[5].max = 1.0;
    let c = Constraints::from_schema(&s, EpsUnits::Raw, Norm::Linf);
    // Make the integer column whole in the clean data.
    let x: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % D == 5 { v.round() } else { v })
        .collect();
    for (name, attack) in attacks() {
        let out = attack(
            &m,
            &AttackInput {
                x: &x,
                labels: &y,
                eps: 1.0,
                constraints: &c,
                seed: 2,
            },
        );
        for (row0, row) in x.chunks(D).zip(out.x_adv.chunks(D)) {
            assert_eq!(&row0[..4], &row[..4], "{name} changed an immutable feature");
            assert_eq!(row[5], row[5].round(), "{name} wrote a fractional integer");
            assert!(s.check_row(row).is_ok(), "{name}: {:?}", s.check_row(row));
        }
    }
}

#[test]
fn l2_pgd_stays_in_the_l2_ball_and_breaks_the_model() {
    let m = model();
    let (x, y) = data(80, 11);
    let c = Constraints::from_schema(&schema(&[]), EpsUnits::Raw, Norm::L2);
    let out = pgd(
        &m,
        &AttackInput {
            x: &x,
            labels: &y,
            eps: 0.8,
            constraints: &c,
            seed: 1,
        },
        &PgdParams::default(),
    )
    .unwrap();
    assert!(c.contains(&x, &out.x_adv, 0.8));
    assert!(accuracy(&m, &out.x_adv, &y).unwrap() < 0.5);
}

#[test]
fn evaluation_reports_a_falling_curve_and_findings() {
    let m = model();
    let (x, y) = data(100, 12);
    let s = schema(&[]);
    let names: Vec<String> = s.features.iter().map(|f| f.name.clone()).collect();
    let classes = vec!["legit".to_string(), "fraud".to_string()];
    let c = Constraints::from_schema(&s, EpsUnits::Raw, Norm::Linf);
    let cfg = RobustnessConfig {
        eps: vec![0.2, 0.01, 0.1],
        attacks: vec![
            AttackKind::Fgsm,
            AttackKind::Pgd,
            AttackKind::AutoAttack,
            AttackKind::Square,
        ],
        apgd_steps: 20,
        queries_per_sample: 300,
        ..Default::default()
    };
    let r = evaluate(
        &m,
        &x,
        &y,
        &c,
        Names {
            features: &names,
            classes: &classes,
            schema: Some(&s),
        },
        &cfg,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        r.curve.iter().map(|p| p.eps).collect::<Vec<_>>(),
        vec![0.01, 0.1, 0.2]
    );
    assert!(r
        .curve
        .windows(2)
        .all(|w| w[1].robust_accuracy <= w[0].robust_accuracy));
    assert!(
        r.curve[2].robust_accuracy < 0.3 && r.curve[0].robust_accuracy > r.clean_accuracy - 0.1,
        "{:?}",
        r.curve
    );
    assert_eq!(r.discarded, 0);
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    assert!(
        !r.examples.is_empty()
            && r.examples
                .iter()
                .all(|e| !e.changes.is_empty() && e.label != e.predicted)
    );
    assert_eq!(r.classes.len(), 2);
    let f = findings(&r, "model.onnx");
    assert!(f
        .iter()
        .any(|f| f.rule.as_str() == "AEG-ROB-001" && f.severity >= aegis_core::Severity::High));
}

/// A model whose gradients are cut (the input is detached): gradient attacks fail, Square does not.
struct Masked(NativeModel);

impl Model for Masked {
    fn n_features(&self) -> usize {
        D
    }
    fn n_classes(&self) -> usize {
        2
    }
    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, MlError> {
        self.0.predict_proba(x, n)
    }
    fn describe(&self) -> String {
        "masked".into()
    }
    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        Some(self)
    }
}

impl Differentiable for Masked {
    fn logits(&self, x: &Tensor) -> Result<Tensor, MlError> {
        self.0.logits(&x.detach())
    }
}

/// A model that adds noise to its outputs on every call.
struct Noisy(NativeModel, AtomicU64);

impl Model for Noisy {
    fn n_features(&self) -> usize {
        D
    }
    fn n_classes(&self) -> usize {
        2
    }
    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, MlError> {
        let mut rng = Rng::new(self.1.fetch_add(1, Ordering::Relaxed));
        let p = self.0.predict_proba(x, n)?;
        Ok(p.chunks(2)
            .flat_map(|r| {
                let a = (r[0] + 0.05 * rng.normal()).clamp(0.0, 1.0);
                [a, 1.0 - a]
            })
            .collect())
    }
    fn describe(&self) -> String {
        "noisy".into()
    }
}

#[test]
fn false_sense_of_security_is_flagged_and_a_plain_model_is_not() {
    let (x, y) = data(80, 13);
    let s = schema(&[]);
    let names: Vec<String> = s.features.iter().map(|f| f.name.clone()).collect();
    let c = Constraints::from_schema(&s, EpsUnits::Raw, Norm::Linf);
    let cfg = RobustnessConfig {
        eps: vec![0.2],
        attacks: vec![AttackKind::Pgd, AttackKind::Square],
        queries_per_sample: 300,
        ..Default::default()
    };
    let names = Names {
        features: &names,
        classes: &[],
        schema: None,
    };
    let masked = evaluate(&Masked(model()), &x, &y, &c, names, &cfg, &NoProgress).unwrap();
    let rules: Vec<&str> = masked.flags.iter().map(|f| f.rule).collect();
    assert!(
        rules.contains(&"AEG-ROB-002") && rules.contains(&"AEG-ROB-004"),
        "{:?}",
        masked.flags
    );
    let noisy = evaluate(
        &Noisy(model(), AtomicU64::new(0)),
        &x,
        &y,
        &c,
        names,
        &cfg,
        &NoProgress,
    )
    .unwrap();
    assert!(
        noisy.flags.iter().any(|f| f.rule == "AEG-ROB-003"),
        "{:?}",
        noisy.flags
    );
    assert!(noisy.skipped.iter().any(|(a, _)| a == "pgd"));
    let plain = evaluate(&model(), &x, &y, &c, names, &cfg, &NoProgress).unwrap();
    assert!(plain.flags.is_empty(), "{:?}", plain.flags);
}
