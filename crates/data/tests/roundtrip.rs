//! End to end: a CSV read into a table, its schema inferred, saved, loaded back unchanged, and every row of
//! the table valid under it.

use std::io::Write;

use aegis_data::{align_schema, infer_schema, load_schema, read_table, save_schema, ReadOptions};

/// A small seeded dataset with an id to drop, integer, continuous, binary and one-hot columns, and string
/// labels.
fn dataset() -> String {
    let mut text = String::from("id,age,amount,is_new,country_de,country_fr,country_it,outcome\n");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    for i in 0..200 {
        let age = 18 + next() % 70;
        let amount = f64::from(next() % 1_000_000) / 100.0;
        let is_new = next() % 2;
        let country = next() % 3;
        let hot = |c| u32::from(country == c);
        let outcome = if next() % 4 == 0 { "fraud" } else { "ok" };
        text.push_str(&format!(
            "user-{i}, {age},{amount:e},{is_new},{},{},{},{outcome}\n",
            hot(0),
            hot(1),
            hot(2)
        ));
    }
    text
}

#[test]
fn infer_save_load_roundtrip_and_every_row_checks() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("data.csv");
    std::fs::File::create(&csv_path)
        .unwrap()
        .write_all(dataset().as_bytes())
        .unwrap();

    let opts = ReadOptions {
        label: Some("outcome".into()),
        drop: vec!["id".into()],
        ..ReadOptions::default()
    };
    let table = read_table(&csv_path, &opts).unwrap();
    assert_eq!(table.n_rows(), 200);
    assert_eq!(
        table.columns,
        vec![
            "age",
            "amount",
            "is_new",
            "country_de",
            "country_fr",
            "country_it"
        ]
    );
    assert_eq!(table.class_names, vec!["fraud", "ok"]);

    let schema = infer_schema(&table);
    let kinds: Vec<String> = schema
        .features
        .iter()
        .map(|f| format!("{:?}", f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Integer",
            "Continuous",
            "Binary",
            "Binary",
            "Binary",
            "Binary"
        ]
    );
    assert_eq!(schema.one_hot.len(), 1);
    assert_eq!(schema.one_hot[0].name, "country");
    assert_eq!(
        schema.one_hot[0].columns,
        vec!["country_de", "country_fr", "country_it"]
    );

    let schema_path = dir.path().join("schema.toml");
    save_schema(&schema, &schema_path).unwrap();
    let loaded = load_schema(&schema_path).unwrap();
    assert_eq!(loaded, schema);

    let aligned = align_schema(&loaded, &table).unwrap();
    assert_eq!(aligned, schema);
    for i in 0..table.n_rows() {
        if let Err(e) = aligned.check_row(table.row(i)) {
            panic!("row {i} fails its own inferred schema: {e}");
        }
    }

    // A row outside the observed bounds does not check.
    let mut bad = table.row(0).to_vec();
    bad[0] = 200.0;
    assert!(aligned.check_row(&bad).is_err());
}
