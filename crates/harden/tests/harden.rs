//! Adversarial training raises robust accuracy on a held-out split, for Madry PGD training and for TRADES,
//! and keeps the weights of the best robust epoch.

use aegis_assess::{Constraints, Norm};
use aegis_harden::{harden, scores, HardenConfig, Method, Split};
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::synthetic::two_gaussians;
use aegis_ml::train::{train, NoHooks, TrainConfig, Trainable};
use aegis_ml::Model;

const D: usize = 30;

/// Feature 0 separates the classes with a margin wider than eps; the other features are each weakly
/// predictive (Tsipras et al.): plain training leans on all of them and an L∞ attack moves them together.
fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut shift = vec![0.1; D];
    let mut noise = vec![0.1; D];
    (shift[0], noise[0]) = (0.2, 0.05);
    two_gaussians(n, &shift, &noise, seed)
}

#[test]
fn hardening_raises_robust_accuracy_on_held_out_rows() {
    let (xt, yt) = data(600, 1);
    let (xv, yv) = data(200, 2);
    let (xh, yh) = data(200, 3);
    let c = Constraints::box_bounds(D, 0.0, 1.0, Norm::Linf);
    let eps = 0.13;
    let cfg_train = TrainConfig {
        epochs: 15,
        batch_size: 32,
        lr: 3e-3,
        seed: 1,
        ..Default::default()
    };
    let plain = NativeModel::new(Arch::Mlp(vec![32]), D, 2, 5).unwrap();
    train(&plain, &xt, &yt, &cfg_train, &mut NoHooks).unwrap();
    let held = Split { x: &xh, y: &yh };
    let plain_scores = scores(&plain, held, &c, eps, 20, 0).unwrap();
    assert!(
        plain_scores.clean_accuracy > 0.95 && plain_scores.robust_accuracy < 0.6,
        "{plain_scores:?}"
    );
    for method in [Method::Pgd, Method::Trades { beta: 6.0 }] {
        let model = NativeModel::new(Arch::Mlp(vec![32]), D, 2, 5).unwrap();
        let cfg = HardenConfig {
            eps,
            method,
            train_steps: 7,
            eval_steps: 10,
            train: cfg_train.clone(),
            patience: 4,
        };
        let mut seen = 0;
        let report = harden(
            &model,
            Split { x: &xt, y: &yt },
            Split { x: &xv, y: &yv },
            &c,
            &cfg,
            &mut |_| seen += 1,
        )
        .unwrap();
        assert_eq!(seen, report.epochs.len());
        let best = report
            .epochs
            .iter()
            .map(|e| e.robust_accuracy)
            .fold(0.0, f64::max);
        assert_eq!(
            report.after.robust_accuracy, best,
            "{method:?}: kept weights are not the best epoch's"
        );
        let hardened = scores(&model, held, &c, eps, 20, 0).unwrap();
        assert!(
            hardened.robust_accuracy > plain_scores.robust_accuracy + 0.15,
            "{method:?}: robust accuracy {} (plain {})",
            hardened.robust_accuracy,
            plain_scores.robust_accuracy
        );
        assert!(
            hardened.clean_accuracy > 0.9,
            "{method:?}: clean accuracy {}",
            hardened.clean_accuracy
        );
        // The hardened model exports to ONNX like any other.
        let dir = tempfile::tempdir().unwrap();
        model.save_onnx(&dir.path().join("h.onnx")).unwrap();
        let reloaded = aegis_ml::onnx::OnnxModel::load(&dir.path().join("h.onnx")).unwrap();
        assert_eq!(reloaded.n_classes(), 2);
    }
}

#[test]
fn empty_splits_are_refused() {
    let model = NativeModel::new(Arch::LogReg, D, 2, 1).unwrap();
    let c = Constraints::box_bounds(D, 0.0, 1.0, Norm::Linf);
    let (x, y) = data(10, 1);
    let err = harden(
        &model,
        Split { x: &x, y: &y },
        Split { x: &[], y: &[] },
        &c,
        &HardenConfig::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("validation"));
}
