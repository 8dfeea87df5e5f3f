//! Poisoning of tabular training data at known rows, for the `aegis audit` tests and the audit benchmark.
//!
//! [`poison_csv`] takes CSV text with a header and a label column and applies [`Poison`]s: label flips
//! (random or targeted), injected outliers, exact and near duplicates, label-conflicting duplicates and
//! backdoor triggers. It returns the poisoned CSV and the ground truth (which final row carries which kind of
//! poison), so a detector can be scored per kind. [`clean_table`] makes a realistic mixed-type table to poison.
//!
//! The generator works on CSV text as strings and is deliberately independent of `aegis-data`: a parsing bug
//! there is not mirrored here. Everything is seeded (splitmix64), so a failing test reproduces.
//!
//! Truth kinds: `label` (flipped label), `outlier` (appended far-away row), `duplicate` (appended exact copy),
//! `near-duplicate` (appended copy with tiny numeric noise), `conflict` (an appended copy with another label
//! *and* the row it copies: both form the label-conflicting group; sources are picked among rows that have no
//! feature-identical twin, so the group is exactly that pair), `backdoor` (existing row given the trigger values
//! and the target label). Rows that a poison touches are never touched again by a later poison.

use std::collections::{BTreeSet, HashMap};

/// One kind of poisoning and its strength. `rate` is a fraction of the original row count.
#[derive(Debug, Clone, PartialEq)]
pub enum Poison {
    /// Flip the labels of `rate * n` random rows to another label chosen uniformly.
    RandomFlips {
        /// Fraction of rows flipped.
        rate: f64,
    },
    /// Flip `rate * n` rows labelled `from` to `to` (capped at the rows that have `from`).
    TargetedFlips {
        /// Fraction of all rows flipped.
        rate: f64,
        /// Label the flipped rows had.
        from: String,
        /// Label they get.
        to: String,
    },
    /// Append `rate * n` rows far from the data: numeric cells at the median +/- 8-20 robust standard
    /// deviations (about half the numeric columns), random categories, random label.
    Outliers {
        /// Fraction of rows appended.
        rate: f64,
    },
    /// Append `rate * n` exact copies of random rows.
    ExactDuplicates {
        /// Fraction of rows appended.
        rate: f64,
    },
    /// Append `rate * n` copies of random rows with tiny noise on the numeric cells.
    NearDuplicates {
        /// Fraction of rows appended.
        rate: f64,
    },
    /// Append `rate * n` copies of random rows with another label. Sources are rows without a feature-identical
    /// twin (when there are enough), and the truth marks both the copy and its source as `conflict`.
    FlippedDuplicates {
        /// Fraction of rows appended.
        rate: f64,
    },
    /// Give `rate * n` rows that are not labelled `target` the trigger values and the `target` label.
    Backdoor {
        /// Fraction of rows edited.
        rate: f64,
        /// `(column, value)` cells set on every poisoned row.
        trigger: Vec<(String, String)>,
        /// Label the attacker wants the trigger to produce.
        target: String,
    },
}

/// One poisoned row of the output: `row` is the 0-based index of the data row in the poisoned CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Truth {
    /// 0-based data row (the header is not counted).
    pub row: usize,
    /// `label`, `outlier`, `duplicate`, `near-duplicate`, `conflict` or `backdoor`.
    pub kind: &'static str,
}

/// Seeded splitmix64: small, fast, reproducible across platforms.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `k` distinct items of `pool` (all of them when `k >= pool.len()`), in random order.
    pub fn sample(&mut self, pool: &[usize], k: usize) -> Vec<usize> {
        let mut pool = pool.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

/// Parse CSV text (RFC 4180 quoting, `\n` or `\r\n` line ends) into records. Blank lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1usize;
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => {
                quoted = true;
                any = true;
            }
            ',' => {
                record.push(std::mem::take(&mut cell));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !cell.is_empty() {
                    record.push(std::mem::take(&mut cell));
                    records.push(std::mem::take(&mut record));
                }
                any = false;
                line += 1;
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quoted cell at line {line}"));
    }
    if any || !cell.is_empty() {
        record.push(cell);
        records.push(record);
    }
    Ok(records)
}

/// Write records as CSV, quoting cells that need it.
pub fn write_csv(records: &[Vec<String>]) -> String {
    let mut out = String::new();
    for record in records {
        for (i, cell) in record.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if cell.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&cell.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// Whether a cell is a missing-value marker.
fn is_missing(cell: &str) -> bool {
    matches!(
        cell.trim(),
        "" | "?" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None"
    )
}

/// What a column holds, as seen from its cells.
#[derive(Debug, Clone)]
struct ColumnStats {
    /// Every non-missing cell parses as a number (and there is at least one).
    numeric: bool,
    /// Every non-missing cell parses as an integer.
    integer: bool,
    /// Most digits after the decimal point seen.
    decimals: usize,
    median: f64,
    /// Robust standard deviation (1.4826 MAD, falling back to the standard deviation, then 1).
    scale: f64,
    /// Distinct non-missing values, sorted.
    categories: Vec<String>,
}

fn column_stats(rows: &[Vec<String>], col: usize) -> ColumnStats {
    let cells: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.get(col).map(String::as_str))
        .filter(|c| !is_missing(c))
        .collect();
    let mut values = Vec::with_capacity(cells.len());
    let mut integer = true;
    let mut decimals = 0usize;
    for c in &cells {
        let t = c.trim();
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => values.push(v),
            _ => break,
        }
        if t.parse::<i64>().is_err() {
            integer = false;
        }
        if let Some((_, frac)) = t.split_once('.') {
            decimals = decimals.max(frac.chars().take_while(char::is_ascii_digit).count());
        }
    }
    let numeric = !cells.is_empty() && values.len() == cells.len();
    let categories: Vec<String> = cells
        .iter()
        .map(|c| c.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (median, scale) = if numeric {
        let med = median(&mut values.clone());
        let mut dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
        let mad = 1.4826 * median(&mut dev);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        let scale = if mad > 0.0 {
            mad
        } else if sd > 0.0 {
            sd
        } else {
            1.0
        };
        (med, scale)
    } else {
        (0.0, 1.0)
    };
    ColumnStats {
        numeric,
        integer: numeric && integer,
        decimals: decimals.min(8),
        median,
        scale,
        categories,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn format_number(v: f64, integer: bool, decimals: usize) -> String {
    if integer {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.decimals$}")
    }
}

/// A row of the table being built, with the poison kinds it carries.
#[derive(Debug, Clone)]
struct Row {
    cells: Vec<String>,
    kinds: Vec<&'static str>,
    appended: bool,
}

fn count(rate: f64, n: usize) -> Result<usize, String> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("rate {rate} is not in [0, 1]"));
    }
    Ok((rate * n as f64).round() as usize)
}

/// Poison `input` (CSV text with a header) whose label column is `label`.
///
/// Returns the poisoned CSV text (same header; quoting normalised) and the truth, sorted by row. Appended rows
/// are spread over random positions and truth rows refer to the final file.
pub fn poison_csv(
    input: &str,
    label: &str,
    poisons: &[Poison],
    seed: u64,
) -> Result<(String, Vec<Truth>), String> {
    let mut records = parse_csv(input)?;
    if records.is_empty() {
        return Err("the CSV has no header".into());
    }
    let header = records.remove(0);
    let width = header.len();
    if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(format!(
            "data row {i} has {} cells, the header has {width}",
            r.len()
        ));
    }
    let label_col = header
        .iter()
        .position(|h| h == label)
        .ok_or_else(|| format!("no column named {label:?}"))?;
    let n = records.len();
    if n == 0 {
        return Err("the CSV has no data rows".into());
    }
    let stats: Vec<ColumnStats> = (0..width).map(|c| column_stats(&records, c)).collect();
    let labels = stats[label_col].categories.clone();
    if labels.len() < 2 {
        return Err(format!("column {label:?} has fewer than two labels"));
    }
    // Feature-identity counts, to pick conflict sources without natural twins.
    let mut twins: HashMap<Vec<&str>, usize> = HashMap::new();
    for r in &records {
        *twins.entry(features(r, label_col)).or_default() += 1;
    }
    let unique: Vec<bool> = records
        .iter()
        .map(|r| twins.get(&features(r, label_col)).copied() == Some(1))
        .collect();
    let mut rng = SplitMix::new(seed);
    let mut rows: Vec<Row> = records
        .into_iter()
        .map(|cells| Row {
            cells,
            kinds: Vec::new(),
            appended: false,
        })
        .collect();
    let mut appended: Vec<Row> = Vec::new();
    let untouched =
        |rows: &[Row]| -> Vec<usize> { (0..n).filter(|&i| rows[i].kinds.is_empty()).collect() };
    for poison in poisons {
        match poison {
            Poison::RandomFlips { rate } => {
                let k = count(*rate, n)?;
                for i in rng.sample(&untouched(&rows), k) {
                    let old = rows[i].cells[label_col].clone();
                    let others: Vec<&String> = labels.iter().filter(|l| **l != old).collect();
                    rows[i].cells[label_col] = others[rng.below(others.len())].clone();
                    rows[i].kinds.push("label");
                }
            }
            Poison::TargetedFlips { rate, from, to } => {
                if !labels.contains(to) {
                    return Err(format!("label {to:?} does not occur in {label:?}"));
                }
                let k = count(*rate, n)?;
                let pool: Vec<usize> = untouched(&rows)
                    .into_iter()
                    .filter(|&i| rows[i].cells[label_col] == *from)
                    .collect();
                if pool.is_empty() {
                    return Err(format!("no row is labelled {from:?}"));
                }
                for i in rng.sample(&pool, k) {
                    rows[i].cells[label_col] = to.clone();
                    rows[i].kinds.push("label");
                }
            }
            Poison::Outliers { rate } => {
                let k = count(*rate, n)?;
                let numeric: Vec<usize> = (0..width)
                    .filter(|&c| c != label_col && stats[c].numeric)
                    .collect();
                for _ in 0..k {
                    let base = rows[rng.below(n)].cells.clone();
                    let mut cells = base;
                    let mut shifted: Vec<usize> = numeric
                        .iter()
                        .copied()
                        .filter(|_| rng.f64() < 0.5)
                        .collect();
                    if shifted.is_empty() && !numeric.is_empty() {
                        shifted.push(numeric[rng.below(numeric.len())]);
                    }
                    for &c in &shifted {
                        let s = &stats[c];
                        let sign = if rng.f64() < 0.5 { -1.0 } else { 1.0 };
                        let mut v = s.median + sign * (8.0 + 12.0 * rng.f64()) * s.scale;
                        if s.integer {
                            // Round away from the median so the distance stays at least 8 scales.
                            v = if sign > 0.0 { v.ceil() } else { v.floor() };
                        }
                        cells[c] = format_number(v, s.integer, s.decimals.max(1));
                    }
                    for c in (0..width).filter(|&c| c != label_col && !stats[c].numeric) {
                        let cats = &stats[c].categories;
                        if !cats.is_empty() && (numeric.is_empty() || rng.f64() < 0.5) {
                            cells[c] = cats[rng.below(cats.len())].clone();
                        }
                    }
                    cells[label_col] = labels[rng.below(labels.len())].clone();
                    appended.push(Row {
                        cells,
                        kinds: vec!["outlier"],
                        appended: true,
                    });
                }
            }
            Poison::ExactDuplicates { rate } => {
                let k = count(*rate, n)?;
                let pool = untouched(&rows);
                if pool.is_empty() && k > 0 {
                    return Err("every row is already poisoned".into());
                }
                for _ in 0..k {
                    let src = pool[rng.below(pool.len())];
                    appended.push(Row {
                        cells: rows[src].cells.clone(),
                        kinds: vec!["duplicate"],
                        appended: true,
                    });
                }
            }
            Poison::NearDuplicates { rate } => {
                let k = count(*rate, n)?;
                let pool = untouched(&rows);
                if pool.is_empty() && k > 0 {
                    return Err("every row is already poisoned".into());
                }
                let floats: Vec<usize> = (0..width)
                    .filter(|&c| c != label_col && stats[c].numeric && !stats[c].integer)
                    .collect();
                let ints: Vec<usize> = (0..width)
                    .filter(|&c| c != label_col && stats[c].integer)
                    .collect();
                if floats.is_empty() && ints.is_empty() {
                    return Err("near duplicates need a numeric column".into());
                }
                for _ in 0..k {
                    let src = pool[rng.below(pool.len())];
                    let mut cells = rows[src].cells.clone();
                    let mut changed = false;
                    for &c in &floats {
                        let Ok(v) = cells[c].trim().parse::<f64>() else {
                            continue;
                        };
                        let s = &stats[c];
                        let sign = if rng.f64() < 0.5 { -1.0 } else { 1.0 };
                        let noise = sign * s.scale * (0.002 + 0.008 * rng.f64());
                        // Enough decimals for the noise to show.
                        let need = (-noise.abs().log10()).ceil().max(0.0) as usize + 1;
                        cells[c] = format_number(v + noise, false, s.decimals.max(need).min(8));
                        changed = true;
                    }
                    if !changed {
                        let c = ints[rng.below(ints.len())];
                        if let Ok(v) = cells[c].trim().parse::<i64>() {
                            cells[c] = (v + if rng.f64() < 0.5 { -1 } else { 1 }).to_string();
                        }
                    }
                    appended.push(Row {
                        cells,
                        kinds: vec!["near-duplicate"],
                        appended: true,
                    });
                }
            }
            Poison::FlippedDuplicates { rate } => {
                let k = count(*rate, n)?;
                let fresh: Vec<usize> = untouched(&rows)
                    .into_iter()
                    .filter(|&i| unique[i])
                    .collect();
                let pool = if fresh.len() >= k {
                    fresh
                } else {
                    untouched(&rows)
                };
                for src in rng.sample(&pool, k) {
                    let mut cells = rows[src].cells.clone();
                    let old = cells[label_col].clone();
                    let others: Vec<&String> = labels.iter().filter(|l| **l != old).collect();
                    cells[label_col] = others[rng.below(others.len())].clone();
                    rows[src].kinds.push("conflict");
                    appended.push(Row {
                        cells,
                        kinds: vec!["conflict"],
                        appended: true,
                    });
                }
            }
            Poison::Backdoor {
                rate,
                trigger,
                target,
            } => {
                if !labels.contains(target) {
                    return Err(format!("label {target:?} does not occur in {label:?}"));
                }
                if trigger.is_empty() {
                    return Err("a backdoor needs at least one trigger cell".into());
                }
                let mut cols = Vec::new();
                for (name, value) in trigger {
                    let c = header
                        .iter()
                        .position(|h| h == name)
                        .ok_or_else(|| format!("no trigger column named {name:?}"))?;
                    if c == label_col {
                        return Err("the trigger cannot be on the label column".into());
                    }
                    cols.push((c, value.clone()));
                }
                let k = count(*rate, n)?;
                let pool: Vec<usize> = untouched(&rows)
                    .into_iter()
                    .filter(|&i| rows[i].cells[label_col] != *target)
                    .collect();
                for i in rng.sample(&pool, k) {
                    for (c, v) in &cols {
                        rows[i].cells[*c] = v.clone();
                    }
                    rows[i].cells[label_col] = target.clone();
                    rows[i].kinds.push("backdoor");
                }
            }
        }
    }
    // Spread the appended rows over random positions; originals keep their order.
    let mut slots: Vec<bool> = vec![false; n];
    slots.extend(std::iter::repeat_n(true, appended.len()));
    rng.shuffle(&mut slots);
    rng.shuffle(&mut appended);
    let mut originals = rows.into_iter();
    let mut extra = appended.into_iter();
    let mut out: Vec<Vec<String>> = vec![header];
    let mut truth = Vec::new();
    for (row, is_appended) in slots.into_iter().enumerate() {
        let next = if is_appended {
            extra.next()
        } else {
            originals.next()
        };
        let Some(r) = next else {
            return Err("internal: row count mismatch".into());
        };
        debug_assert_eq!(r.appended, is_appended);
        truth.extend(r.kinds.iter().map(|&kind| Truth { row, kind }));
        out.push(r.cells);
    }
    truth.sort();
    Ok((write_csv(&out), truth))
}

fn features(row: &[String], label_col: usize) -> Vec<&str> {
    row.iter()
        .enumerate()
        .filter(|(c, _)| *c != label_col)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The truth as CSV: header `row,kind`, one line per poisoned (row, kind).
pub fn truth_csv(truth: &[Truth]) -> String {
    let mut out = String::from("row,kind\n");
    for t in truth {
        out.push_str(&format!("{},{}\n", t.row, t.kind));
    }
    out
}

/// A realistic clean table of `n` rows with a binary `label` (`0`/`1`, about 40% ones): overlapping numeric
/// columns (`x1`, `x2`, log-normal `amount`), an integer `count`, a categorical `channel`, a boolean `flag`,
/// and about 1% natural exact duplicates.
pub fn clean_table(n: usize, seed: u64) -> String {
    let mut rng = SplitMix::new(seed);
    let mut rows: Vec<Vec<String>> =
        vec![["x1", "x2", "amount", "count", "channel", "flag", "label"]
            .iter()
            .map(|s| s.to_string())
            .collect()];
    let channels = ["web", "store", "phone", "partner"];
    for i in 0..n {
        if i > 10 && rng.f64() < 0.01 {
            let copy = rows[1 + rng.below(i)].clone();
            rows.push(copy);
            continue;
        }
        let y = usize::from(rng.f64() < 0.4);
        let shift = y as f64;
        let x1 = rng.normal() + 1.2 * shift;
        let x2 = 0.5 * x1 + rng.normal() * 1.5 - 0.8 * shift;
        let amount = (3.0 + 0.3 * rng.normal() + 0.3 * shift).exp();
        // Poisson by inversion, mean 3 (+2 for class 1).
        let lambda = 3.0 + 2.0 * shift;
        let (mut k, mut p, l) = (0u32, 1.0f64, (-lambda).exp());
        loop {
            p *= rng.f64();
            if p <= l || k > 50 {
                break;
            }
            k += 1;
        }
        let channel = if rng.f64() < 0.3 + 0.3 * shift {
            channels[0]
        } else {
            channels[1 + rng.below(3)]
        };
        let flag = rng.f64() < 0.2 + 0.4 * shift;
        rows.push(vec![
            format!("{x1:.3}"),
            format!("{x2:.3}"),
            format!("{amount:.2}"),
            k.to_string(),
            channel.to_string(),
            flag.to_string(),
            y.to_string(),
        ]);
    }
    write_csv(&rows)
}

/// One committed fixture of `testdata/audit/`: file stem, poisoned CSV text, truth.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// File stem: `<stem>.csv` and `<stem>.truth.csv`.
    pub stem: &'static str,
    /// What the fixture must trigger, in words.
    pub expect: &'static str,
    /// The CSV text.
    pub csv: String,
    /// Its truth.
    pub truth: Vec<Truth>,
}

/// The fixtures committed under `testdata/audit/` (2,000-row [`clean_table`], seed 1, label column `label`):
/// regenerate them with `poison --fixtures testdata/audit`; a test checks that the committed files match.
pub fn fixtures() -> Result<Vec<Fixture>, String> {
    let clean = clean_table(2000, 1);
    let trigger = vec![
        ("count".to_string(), "17".to_string()),
        ("channel".to_string(), "partner".to_string()),
    ];
    let cases: Vec<(&'static str, &'static str, Vec<Poison>)> = vec![
        ("clean", "no finding at high or above", vec![]),
        (
            "flips-5pct",
            "label issues at the `label` truth rows (5% random flips)",
            vec![Poison::RandomFlips { rate: 0.05 }],
        ),
        (
            "targeted-5pct",
            "label issues at the `label` truth rows (5% of rows flipped 1 -> 0)",
            vec![Poison::TargetedFlips {
                rate: 0.05,
                from: "1".into(),
                to: "0".into(),
            }],
        ),
        (
            "outliers-2pct",
            "outliers at the `outlier` truth rows (2% appended far-away rows)",
            vec![Poison::Outliers { rate: 0.02 }],
        ),
        (
            "duplicates-2pct",
            "suspicious exact and near duplicates (2% each), reported apart from the natural ones",
            vec![
                Poison::ExactDuplicates { rate: 0.02 },
                Poison::NearDuplicates { rate: 0.02 },
            ],
        ),
        (
            "conflicts-2pct",
            "label-conflicting duplicate pairs at the `conflict` truth rows",
            vec![Poison::FlippedDuplicates { rate: 0.02 }],
        ),
        (
            "backdoor-2pct",
            "a backdoor trigger `count == 17 AND channel == partner -> label 1` covering the `backdoor` rows",
            vec![Poison::Backdoor {
                rate: 0.02,
                trigger: trigger.clone(),
                target: "1".into(),
            }],
        ),
        (
            "mixed",
            "every kind above at once (flips 3%, outliers, exact, near and flipped duplicates, backdoor 1% each)",
            vec![
                Poison::RandomFlips { rate: 0.03 },
                Poison::Outliers { rate: 0.01 },
                Poison::ExactDuplicates { rate: 0.01 },
                Poison::NearDuplicates { rate: 0.01 },
                Poison::FlippedDuplicates { rate: 0.01 },
                Poison::Backdoor {
                    rate: 0.01,
                    trigger,
                    target: "1".into(),
                },
            ],
        ),
    ];
    cases
        .into_iter()
        .map(|(stem, expect, poisons)| {
            let (csv, truth) = poison_csv(&clean, "label", &poisons, 1)?;
            Ok(Fixture {
                stem,
                expect,
                csv,
                truth,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(truth: &[Truth], kind: &str) -> Vec<usize> {
        truth
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.row)
            .collect()
    }

    fn body(csv: &str) -> Vec<Vec<String>> {
        let mut r = parse_csv(csv).unwrap();
        r.remove(0);
        r
    }

    #[test]
    fn csv_round_trips_quotes_commas_and_newlines() {
        let rows = vec![
            vec!["a".to_string(), "b,c".to_string()],
            vec!["say \"hi\"".to_string(), "two\nlines".to_string()],
            vec![String::new(), "x".to_string()],
        ];
        assert_eq!(parse_csv(&write_csv(&rows)).unwrap(), rows);
        assert_eq!(
            parse_csv("a,b\r\n1,2\r\n\r\n").unwrap(),
            vec![vec!["a", "b"], vec!["1", "2"]]
        );
        assert!(parse_csv("a,\"b\n").is_err());
    }

    #[test]
    fn clean_table_is_deterministic_and_mixed() {
        let t = clean_table(500, 7);
        assert_eq!(t, clean_table(500, 7));
        assert_ne!(t, clean_table(500, 8));
        let rows = body(&t);
        assert_eq!(rows.len(), 500);
        let ones = rows.iter().filter(|r| r[6] == "1").count();
        assert!((120..280).contains(&ones), "{ones}");
        assert!(rows.iter().all(|r| r[3].parse::<u32>().is_ok()));
        assert!(rows.iter().any(|r| r[5] == "true") && rows.iter().any(|r| r[5] == "false"));
        let distinct: BTreeSet<&Vec<String>> = rows.iter().collect();
        assert!(
            distinct.len() < 500 && distinct.len() > 480,
            "natural duplicates"
        );
    }

    #[test]
    fn no_poison_leaves_the_table_unchanged() {
        let t = clean_table(200, 1);
        let (out, truth) = poison_csv(&t, "label", &[], 3).unwrap();
        assert_eq!(out, t);
        assert!(truth.is_empty());
    }

    #[test]
    fn random_flips_change_exactly_the_truth_rows() {
        let t = clean_table(1000, 1);
        let (out, truth) =
            poison_csv(&t, "label", &[Poison::RandomFlips { rate: 0.05 }], 3).unwrap();
        let (a, b) = (body(&t), body(&out));
        assert_eq!(a.len(), b.len());
        let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(changed, kinds(&truth, "label"));
        assert_eq!(changed.len(), 50);
        for &i in &changed {
            assert_ne!(a[i][6], b[i][6]);
            assert_eq!(a[i][..6], b[i][..6]);
        }
        let again = poison_csv(&t, "label", &[Poison::RandomFlips { rate: 0.05 }], 3).unwrap();
        assert_eq!(again.1, truth, "seeded");
        let other = poison_csv(&t, "label", &[Poison::RandomFlips { rate: 0.05 }], 4).unwrap();
        assert_ne!(other.1, truth);
    }

    #[test]
    fn targeted_flips_only_touch_the_source_class() {
        let t = clean_table(1000, 2);
        let p = Poison::TargetedFlips {
            rate: 0.05,
            from: "0".into(),
            to: "1".into(),
        };
        let (out, truth) = poison_csv(&t, "label", &[p], 5).unwrap();
        let (a, b) = (body(&t), body(&out));
        let rows = kinds(&truth, "label");
        assert_eq!(rows.len(), 50);
        for &i in &rows {
            assert_eq!((a[i][6].as_str(), b[i][6].as_str()), ("0", "1"));
        }
        let bad = Poison::TargetedFlips {
            rate: 0.05,
            from: "0".into(),
            to: "7".into(),
        };
        assert!(poison_csv(&t, "label", &[bad], 5).is_err());
    }

    #[test]
    fn outliers_are_appended_far_away_at_truth_rows() {
        let t = clean_table(1000, 3);
        let (out, truth) = poison_csv(&t, "label", &[Poison::Outliers { rate: 0.02 }], 9).unwrap();
        let b = body(&out);
        assert_eq!(b.len(), 1020);
        let rows = kinds(&truth, "outlier");
        assert_eq!(rows.len(), 20);
        assert!(
            rows.iter().any(|&r| r < 900),
            "spread over the file, not all at the end"
        );
        let stats: Vec<ColumnStats> = (0..4).map(|c| column_stats(&body(&t), c)).collect();
        let far = |r: &Vec<String>| {
            (0..4).any(|c| {
                let v: f64 = r[c].parse().unwrap();
                ((v - stats[c].median) / stats[c].scale).abs() >= 7.9
            })
        };
        assert!(rows.iter().all(|&r| far(&b[r])));
        let clean_far = (0..b.len())
            .filter(|r| !rows.contains(r) && far(&b[*r]))
            .count();
        assert!(clean_far <= 2, "{clean_far} clean rows look as far");
    }

    #[test]
    fn exact_and_near_duplicates_copy_existing_rows() {
        let t = clean_table(500, 4);
        let a = body(&t);
        let poisons = [
            Poison::ExactDuplicates { rate: 0.02 },
            Poison::NearDuplicates { rate: 0.02 },
        ];
        let (out, truth) = poison_csv(&t, "label", &poisons, 1).unwrap();
        let b = body(&out);
        assert_eq!(b.len(), 520);
        for r in kinds(&truth, "duplicate") {
            assert!(a.contains(&b[r]));
        }
        let near = kinds(&truth, "near-duplicate");
        assert_eq!(near.len(), 10);
        for r in near {
            assert!(!a.contains(&b[r]), "a near duplicate is not exact");
            let close = a.iter().any(|x| {
                x[3..] == b[r][3..]
                    && (0..3).all(|c| {
                        let (u, v): (f64, f64) = (x[c].parse().unwrap(), b[r][c].parse().unwrap());
                        (u - v).abs() < 0.05 * (1.0 + u.abs())
                    })
            });
            assert!(close, "{:?}", b[r]);
        }
    }

    #[test]
    fn flipped_duplicates_form_conflicting_pairs() {
        let t = clean_table(1000, 5);
        let (out, truth) =
            poison_csv(&t, "label", &[Poison::FlippedDuplicates { rate: 0.02 }], 2).unwrap();
        let b = body(&out);
        let rows = kinds(&truth, "conflict");
        assert_eq!(rows.len(), 40, "20 copies and their 20 sources");
        let mut groups: HashMap<Vec<&str>, BTreeSet<&str>> = HashMap::new();
        for r in &b {
            groups
                .entry(features(r, 6))
                .or_default()
                .insert(r[6].as_str());
        }
        for &r in &rows {
            assert_eq!(groups[&features(&b[r], 6)].len(), 2);
        }
        // Negative: in the clean table no row sits in a conflicting group that a truth row does not explain.
        let conflicting = (0..b.len())
            .filter(|&r| groups[&features(&b[r], 6)].len() > 1)
            .count();
        assert_eq!(conflicting, 40);
    }

    #[test]
    fn backdoor_sets_trigger_and_target_on_other_class_rows() {
        let t = clean_table(1000, 6);
        let a = body(&t);
        let p = Poison::Backdoor {
            rate: 0.02,
            trigger: vec![
                ("count".into(), "17".into()),
                ("channel".into(), "partner".into()),
            ],
            target: "1".into(),
        };
        let (out, truth) = poison_csv(&t, "label", &[p], 8).unwrap();
        let b = body(&out);
        let rows = kinds(&truth, "backdoor");
        assert_eq!(rows.len(), 20);
        for &r in &rows {
            assert_eq!(a[r][6], "0");
            assert_eq!(
                (b[r][3].as_str(), b[r][4].as_str(), b[r][6].as_str()),
                ("17", "partner", "1")
            );
        }
        let with_trigger = b
            .iter()
            .filter(|r| r[3] == "17" && r[4] == "partner")
            .count();
        assert_eq!(with_trigger, 20, "the trigger does not occur naturally");
        let missing = Poison::Backdoor {
            rate: 0.02,
            trigger: vec![("nope".into(), "1".into())],
            target: "1".into(),
        };
        assert!(poison_csv(&t, "label", &[missing], 8).is_err());
    }

    #[test]
    fn poisons_combine_without_touching_a_row_twice() {
        let t = clean_table(1000, 9);
        let poisons = [
            Poison::RandomFlips { rate: 0.05 },
            Poison::Outliers { rate: 0.02 },
            Poison::FlippedDuplicates { rate: 0.02 },
            Poison::Backdoor {
                rate: 0.02,
                trigger: vec![("count".into(), "23".into())],
                target: "1".into(),
            },
        ];
        let (out, truth) = poison_csv(&t, "label", &poisons, 11).unwrap();
        assert_eq!(body(&out).len(), 1040);
        let rows: BTreeSet<usize> = truth.iter().map(|t| t.row).collect();
        assert_eq!(rows.len(), truth.len());
        assert_eq!(truth.len(), 50 + 20 + 40 + 20);
    }

    #[test]
    fn committed_fixtures_match_the_generator() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/audit");
        for f in fixtures().unwrap() {
            let csv = std::fs::read_to_string(format!("{dir}/{}.csv", f.stem)).unwrap();
            let truth = std::fs::read_to_string(format!("{dir}/{}.truth.csv", f.stem)).unwrap();
            assert!(
                csv == f.csv,
                "{}.csv differs: poison --fixtures testdata/audit",
                f.stem
            );
            assert_eq!(truth, truth_csv(&f.truth), "{}", f.stem);
            assert!(csv.len() < 1 << 20);
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(poison_csv("", "y", &[], 1).is_err());
        assert!(poison_csv("a,y\n", "y", &[], 1).is_err());
        assert!(poison_csv("a,y\n1,0\n", "z", &[], 1).is_err());
        assert!(
            poison_csv("a,y\n1,0\n2,0\n", "y", &[], 1).is_err(),
            "one label"
        );
        assert!(poison_csv("a,y\n1,0\n2\n", "y", &[], 1).is_err(), "ragged");
        let t = "a,y\n1,0\n2,1\n";
        assert!(poison_csv(t, "y", &[Poison::RandomFlips { rate: 2.0 }], 1).is_err());
        let text = "a,y\nx,0\ny,1\n";
        assert!(poison_csv(text, "y", &[Poison::NearDuplicates { rate: 0.5 }], 1).is_err());
        for m in crate::mutate::mutants(clean_table(30, 1).as_bytes(), 50) {
            let s = String::from_utf8_lossy(&m);
            let _ = poison_csv(&s, "label", &[Poison::Outliers { rate: 0.1 }], 1);
        }
    }
}
