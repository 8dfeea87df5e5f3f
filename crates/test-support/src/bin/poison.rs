//! Poison a CSV table at known rows (or write a clean synthetic one), for the audit benchmark.
//!
//! ```sh
//! poison --in X.csv --label y --kind random-flips --rate 0.05 --seed 1 --out Y.csv --truth Y.truth.csv
//! poison --in X.csv --label y --kind targeted-flips --rate 0.05 --from 0 --to 1 ...
//! poison --in X.csv --label y --kind backdoor --rate 0.02 --trigger 'col=value' --trigger 'c2=v' --target 1 ...
//! poison --clean 10000 --seed 1 --out clean.csv      # the synthetic mixed table (label column `label`)
//! poison --fixtures testdata/audit                    # rewrite the committed fixtures
//! ```
//! Kinds: random-flips, targeted-flips, outliers, exact-duplicates, near-duplicates, flipped-duplicates,
//! backdoor. `--kind` may be repeated (applied in order, all at `--rate`). The truth file has the header
//! `row,kind` with 0-based data rows of the output.

use aegis_test_support::poison::{clean_table, fixtures, poison_csv, truth_csv, Poison};
use std::path::PathBuf;

const USAGE: &str =
    "usage: poison --in X.csv --label COL --kind KIND [--kind KIND] --rate R [--seed S] \
[--from L --to L] [--trigger COL=VALUE ...] [--target L] --out Y.csv [--truth T.csv]\n       \
poison --clean N [--seed S] --out Y.csv\n       poison --fixtures DIR";

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut input, mut out, mut truth): (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) =
        (None, None, None);
    let (mut label, mut from, mut to, mut target) = (None, None, None, None);
    let (mut kinds, mut trigger) = (Vec::new(), Vec::new());
    let (mut rate, mut seed, mut clean) = (None::<f64>, 1u64, None::<usize>);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--in" => input = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--truth" => truth = Some(PathBuf::from(value()?)),
            "--label" => label = Some(value()?),
            "--kind" => kinds.push(value()?),
            "--rate" => rate = Some(value()?.parse()?),
            "--seed" => seed = value()?.parse()?,
            "--from" => from = Some(value()?),
            "--to" => to = Some(value()?),
            "--target" => target = Some(value()?),
            "--trigger" => {
                let v = value()?;
                let (col, val) = v
                    .split_once('=')
                    .ok_or(format!("--trigger wants COL=VALUE, got {v:?}"))?;
                trigger.push((col.to_owned(), val.to_owned()));
            }
            "--clean" => clean = Some(value()?.parse()?),
            "--fixtures" => {
                let dir = PathBuf::from(value()?);
                std::fs::create_dir_all(&dir)?;
                for f in fixtures()? {
                    std::fs::write(dir.join(format!("{}.csv", f.stem)), &f.csv)?;
                    std::fs::write(
                        dir.join(format!("{}.truth.csv", f.stem)),
                        truth_csv(&f.truth),
                    )?;
                    eprintln!("{}: {}", f.stem, f.expect);
                }
                return Ok(());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unexpected argument {other}\n{USAGE}").into()),
        }
    }
    let out = out.ok_or(format!("--out is required\n{USAGE}"))?;
    if let Some(n) = clean {
        std::fs::write(&out, clean_table(n, seed))?;
        return Ok(());
    }
    let input = input.ok_or(format!("--in is required\n{USAGE}"))?;
    let label = label.ok_or("--label is required")?;
    let rate = rate.ok_or("--rate is required")?;
    let mut poisons = Vec::new();
    for kind in &kinds {
        poisons.push(match kind.as_str() {
            "random-flips" => Poison::RandomFlips { rate },
            "targeted-flips" => Poison::TargetedFlips {
                rate,
                from: from.clone().ok_or("targeted-flips needs --from")?,
                to: to.clone().ok_or("targeted-flips needs --to")?,
            },
            "outliers" => Poison::Outliers { rate },
            "exact-duplicates" => Poison::ExactDuplicates { rate },
            "near-duplicates" => Poison::NearDuplicates { rate },
            "flipped-duplicates" => Poison::FlippedDuplicates { rate },
            "backdoor" => Poison::Backdoor {
                rate,
                trigger: trigger.clone(),
                target: target.clone().ok_or("backdoor needs --target")?,
            },
            other => return Err(format!("unknown kind {other}\n{USAGE}").into()),
        });
    }
    let text =
        std::fs::read_to_string(&input).map_err(|e| format!("reading {}: {e}", input.display()))?;
    let (csv, rows) = poison_csv(&text, &label, &poisons, seed)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    std::fs::write(&out, csv)?;
    if let Some(path) = truth {
        std::fs::write(&path, truth_csv(&rows))?;
    }
    eprintln!("{}: {} poisoned rows", out.display(), rows.len());
    Ok(())
}
