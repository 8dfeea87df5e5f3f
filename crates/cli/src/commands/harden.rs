//! `aegis harden`: adversarial training of a native network or an ONNX model, with a before/after report.

use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::Norm;
use aegis_core::{Artefact, Report};
use aegis_harden::{harden, HardenConfig, Method, Split};
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::onnx::OnnxModel;
use aegis_ml::train::{TrainConfig, Trainable};
use anyhow::{bail, Context};

use super::inputs;
use crate::args::{GlobalArgs, HardenArgs, MethodArg};
use crate::{output, progress};

pub fn run(global: &GlobalArgs, args: HardenArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !args.eps.is_finite() || args.eps <= 0.0 {
        bail!("--eps must be a positive number");
    }
    if !(0.0..0.9).contains(&args.val_split) || args.val_split <= 0.0 {
        bail!("--val-split must be between 0 and 0.9");
    }
    let data = inputs::load_data(&args.data)?;
    let (d, k) = (data.table.n_features(), data.table.class_names.len().max(2));
    let model: Box<dyn Trainable> = match (&args.model, &args.arch) {
        (Some(path), _) => {
            // The same checks as every command (the forward engine and the gradient evaluator must agree).
            let checked = aegis_ml::load_onnx(path)?;
            if checked.as_differentiable().is_none() {
                bail!(
                    "{} cannot be fine-tuned: it gives no checked gradients ({}); train a native network \
                     with --arch instead",
                    path.display(),
                    checked.describe()
                );
            }
            let m = OnnxModel::load(path)?;
            if let Some(why) = m.not_fine_tunable() {
                bail!(
                    "{} cannot be fine-tuned: {why}; train a native network with --arch instead",
                    path.display()
                );
            }
            Box::new(m)
        }
        (None, Some(arch)) => {
            let arch: Arch = arch.parse().map_err(anyhow::Error::msg)?;
            Box::new(NativeModel::new(arch, d, k, args.data.seed)?)
        }
        (None, None) => bail!("give an ONNX MODEL to fine-tune or --arch to train from scratch"),
    };
    let name = args.model.as_ref().map_or_else(
        || args.arch.clone().unwrap_or_default(),
        |p| p.display().to_string(),
    );
    inputs::check_fit(model.as_ref(), &data, &name)?;
    let constraints = inputs::constraints(&data.schema, args.data.eps_units, Norm::Linf);

    let (val_rows, train_rows) =
        aegis_harden::validation_split(data.table.n_rows(), args.val_split, args.data.seed);
    let (val_rows, train_rows) = (val_rows.as_slice(), train_rows.as_slice());
    let train_t = data.table.select(train_rows);
    let val_t = data.table.select(val_rows);
    let train_y: Vec<u32> = train_rows.iter().map(|&i| data.labels[i]).collect();
    let val_y: Vec<u32> = val_rows.iter().map(|&i| data.labels[i]).collect();
    if train_y.is_empty() {
        bail!(
            "{} has too few rows to hold out a validation split",
            args.data.data.display()
        );
    }

    let (default_epochs, default_patience) =
        aegis_harden::default_schedule(train_y.len(), args.batch_size);
    let epochs = args.epochs.unwrap_or(default_epochs);
    let patience = args.patience.unwrap_or(default_patience);
    if epochs == 0 || patience == 0 {
        bail!("--epochs and --patience must be at least 1");
    }
    let cfg = HardenConfig {
        eps: args.eps,
        method: match args.method {
            MethodArg::Pgd => Method::Pgd,
            MethodArg::Trades => Method::Trades { beta: args.beta },
        },
        train_steps: args.steps,
        eval_steps: args.eval_steps,
        train: TrainConfig {
            epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            weight_decay: 0.0,
            seed: args.data.seed,
        },
        patience,
    };
    let bar = progress::StageProgress::new(global.quiet, "hardening");
    bar.set(0, epochs, String::new());
    let quiet = global.quiet;
    let report_epoch = &mut |e: &aegis_harden::EpochRecord| {
        let line = format!(
            "epoch {:>3}  loss {:.4}  clean {:>5.1}%  robust {:>5.1}%",
            e.epoch,
            e.train_loss,
            e.clean_accuracy * 100.0,
            e.robust_accuracy * 100.0
        );
        bar.set(
            e.epoch,
            epochs,
            format!("robust {:.1}%", e.robust_accuracy * 100.0),
        );
        bar.println(&line);
        if !quiet && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("{line}");
        }
    };
    let result = harden(
        model.as_ref(),
        Split {
            x: &train_t.features,
            y: &train_y,
        },
        Split {
            x: &val_t.features,
            y: &val_y,
        },
        &constraints,
        &cfg,
        report_epoch,
    )
    .with_context(|| format!("hardening {name}"))?;
    bar.finish();
    let mut result = result;
    let mut before_is = "the model before training";
    if let (Some(arch), false) = (&args.arch, args.no_baseline) {
        let baseline = NativeModel::new(
            arch.parse().map_err(anyhow::Error::msg)?,
            d,
            k,
            args.data.seed,
        )?;
        let train_split = Split {
            x: &train_t.features,
            y: &train_y,
        };
        let val_split = Split {
            x: &val_t.features,
            y: &val_y,
        };
        result.before =
            aegis_harden::baseline_scores(&baseline, train_split, val_split, &constraints, &cfg)?;
        before_is = "the same architecture trained without adversarial examples";
    }
    model
        .save_onnx(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;

    let mut report = Report::new(
        "harden",
        vec![name.clone(), args.data.data.display().to_string()],
    );
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report.artefacts.push(Artefact {
        kind: "hardened-model".into(),
        path: args.out.display().to_string(),
    });
    report
        .metrics
        .insert("harden".into(), serde_json::to_value(&result)?);
    report
        .metrics
        .insert("train_rows".into(), train_y.len().into());
    report
        .metrics
        .insert("validation_rows".into(), val_y.len().into());
    report.metrics.insert("before_is".into(), before_is.into());
    report.findings = aegis_harden::findings(&result, &args.out.display().to_string());
    if !global.quiet {
        eprintln!(
            "before: clean {:.1}% robust {:.1}%   after (epoch {}): clean {:.1}% robust {:.1}%   wrote {}",
            result.before.clean_accuracy * 100.0,
            result.before.robust_accuracy * 100.0,
            result.best_epoch,
            result.after.clean_accuracy * 100.0,
            result.after.robust_accuracy * 100.0,
            args.out.display()
        );
    }
    output::emit(global, &report, &aegis_assess::rules::all())
}
