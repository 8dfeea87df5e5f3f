//! Reading datasets for `aegis audit` and `aegis schema`: the shared `--delimiter`, `--no-header`,
//! `--missing`, `--type` and `--drop` flags turned into the data crate's options (the model commands and
//! `aegis drift` use [`delimiter`] too, so every command takes the same `--delimiter`).

use std::collections::BTreeMap;
use std::path::Path;

use aegis_core::{ColumnKind, Frame};
use aegis_data::ReadOptions;
use anyhow::{bail, Context};

use crate::args::ReadArgs;

/// The reader options the flags ask for.
pub fn read_options(args: &ReadArgs, label: Option<String>) -> anyhow::Result<ReadOptions> {
    if args.max_rows == Some(0) {
        bail!("--max-rows 0 reads no row; give at least 1, or leave it out to read every row");
    }
    let mut opts = ReadOptions {
        label,
        drop: args.drop.clone(),
        header: !args.no_header,
        max_rows: args.max_rows,
        ..ReadOptions::default()
    };
    opts.delimiter = delimiter(args.delimiter)?;
    if let Some(m) = &args.missing {
        opts.missing = m.clone();
    }
    let mut types = BTreeMap::new();
    for t in &args.types {
        let Some((col, kind)) = t.split_once('=') else {
            bail!("--type takes COLUMN=TYPE, got `{t}`");
        };
        types.insert(col.trim().to_owned(), parse_kind(kind.trim())?);
    }
    opts.types = types;
    Ok(opts)
}

/// `--delimiter` as a byte: one ASCII character that is not a quote or a line break.
pub fn delimiter(flag: Option<char>) -> anyhow::Result<Option<u8>> {
    let Some(d) = flag else {
        return Ok(None);
    };
    match u8::try_from(d) {
        Ok(b) if d.is_ascii() && !matches!(d, '"' | '\n' | '\r') => Ok(Some(b)),
        _ => bail!(
            "--delimiter must be a single ASCII character other than a quote or newline, got {d:?}"
        ),
    }
}

fn parse_kind(s: &str) -> anyhow::Result<ColumnKind> {
    Ok(match s {
        "numeric" => ColumnKind::Numeric,
        "categorical" => ColumnKind::Categorical,
        "boolean" => ColumnKind::Boolean,
        "text" => ColumnKind::Text,
        "timestamp" => ColumnKind::Timestamp,
        other => bail!(
            "unknown column type `{other}`: use numeric, categorical, boolean, text or timestamp"
        ),
    })
}

/// Reads a CSV or Parquet file into a frame.
pub fn read(path: &Path, opts: &ReadOptions) -> anyhow::Result<Frame> {
    aegis_data::read_frame(path, opts).with_context(|| format!("reading {}", path.display()))
}
