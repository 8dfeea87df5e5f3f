//! Reads the committed `tests/data/mixed.csv` (semicolon-separated, quoted cells, a cell spanning two
//! lines, missing markers, every column type and string labels) through the public API, the way the `audit`
//! and `schema` commands do.

use std::path::PathBuf;

use aegis_core::{ColumnData, ColumnKind, MISSING_CODE};
use aegis_data::{read_frame, stream_records, ReadOptions};

fn mixed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mixed.csv")
}

#[test]
fn mixed_csv_reads_into_typed_columns() {
    let opts = ReadOptions {
        label: Some("label".into()),
        drop: vec!["id".into()],
        ..ReadOptions::default()
    };
    let f = read_frame(&mixed(), &opts).unwrap();
    assert_eq!(f.n_rows, 4);
    let kinds: Vec<(&str, ColumnKind)> = f
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            // "12,5" is not a number in a semicolon file: the column is categorical.
            ("amount", ColumnKind::Categorical),
            ("country", ColumnKind::Categorical),
            ("active", ColumnKind::Boolean),
            ("signup", ColumnKind::Timestamp),
            ("note", ColumnKind::Categorical),
        ]
    );
    assert_eq!(
        f.column("active").unwrap().data,
        ColumnData::Boolean(vec![Some(true), Some(false), None, Some(true)])
    );
    assert!(matches!(
        &f.column("amount").unwrap().data,
        ColumnData::Categorical { codes, .. } if codes[2] == MISSING_CODE
    ));
    let labels = f.labels.unwrap();
    assert_eq!(labels.classes, vec!["ham", "spam"]);
    assert_eq!(labels.codes, vec![0, 1, 0, 1]);

    let (header, rows) = stream_records(&mixed(), &opts).unwrap();
    assert_eq!(header.len(), 6);
    let lines: Vec<Option<u64>> = rows.map(|r| r.unwrap().line).collect();
    // The quoted newline in row 3 pushes row 4 to line 6.
    assert_eq!(lines, vec![Some(2), Some(3), Some(4), Some(6)]);
}
