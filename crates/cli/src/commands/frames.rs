//! Reading datasets for `aegis audit` and `aegis schema`: the shared `--delimiter`, `--no-header`,
//! `--missing`, `--type` and `--drop` flags turned into the data crate's options.

use std::collections::BTreeMap;
use std::path::Path;

use aegis_core::{ColumnKind, Frame};
use aegis_data::ReadOptions;
use anyhow::{bail, Context};

use crate::args::ReadArgs;

/// The reader options the flags ask for.
pub fn read_options(args: &ReadArgs, label: Option<String>) -> anyhow::Result<ReadOptions> {
    let mut opts = ReadOptions {
        label,
        drop: args.drop.clone(),
        header: !args.no_header,
        max_rows: args.max_rows,
        ..ReadOptions::default()
    };
    if let Some(d) = args.delimiter {
        let Ok(b) = u8::try_from(d) else {
            bail!("--delimiter must be a single ASCII character, got {d:?}");
        };
        if !d.is_ascii() || d == '"' || d == '\n' || d == '\r' {
            bail!("--delimiter must be a single ASCII character other than a quote or newline, got {d:?}");
        }
        opts.delimiter = Some(b);
    }
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
