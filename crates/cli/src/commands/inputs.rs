//! Loading what the model commands share: the model (ONNX file or HTTP endpoint), the labelled table (CSV or Parquet), and the
//! feature schema (given or inferred), checked against each other with errors that name both sides.

use std::path::Path;

use aegis_assess::{Constraints, EpsUnits, Norm};
use aegis_core::{Schema, Table};
use aegis_data::ReadOptions;
use aegis_ml::http::{HttpModel, HttpModelConfig, Protocol};
use aegis_ml::Model;
use anyhow::{bail, Context};

use crate::args::{DataArgs, EpsUnitsArg};

/// The labelled data and the schema its rows must satisfy.
pub struct Data {
    pub table: Table,
    pub labels: Vec<u32>,
    pub schema: Schema,
    pub schema_inferred: bool,
}

/// Read the CSV and the schema (or infer one).
pub fn load_data(args: &DataArgs) -> anyhow::Result<Data> {
    let opts = ReadOptions {
        label: Some(args.label.clone()),
        drop: args.drop.clone(),
        delimiter: super::frames::delimiter(args.delimiter)?,
        ..ReadOptions::default()
    };
    let table = aegis_data::read_table(&args.data, &opts)?;
    let labels = table
        .labels
        .clone()
        .with_context(|| format!("{} has no label column", args.data.display()))?;
    let (schema, schema_inferred) = match &args.schema {
        Some(path) => {
            let schema = aegis_data::load_model_schema(path, &args.drop)?;
            let aligned = aegis_data::align_schema(&schema, &table).with_context(|| {
                format!(
                    "schema {} does not match {}",
                    path.display(),
                    args.data.display()
                )
            })?;
            (aligned, false)
        }
        None => (aegis_data::infer_schema(&table), true),
    };
    for i in 0..table.n_rows() {
        if let Err(why) = schema.check_row(table.row(i)) {
            bail!(
                "{} data row {} violates the schema: {why}",
                args.data.display(),
                i + 1
            );
        }
    }
    Ok(Data {
        table,
        labels,
        schema,
        schema_inferred,
    })
}

/// The constraints of the schema in the units asked for.
pub fn constraints(schema: &Schema, units: EpsUnitsArg, norm: Norm) -> Constraints {
    let units = match units {
        EpsUnitsArg::Raw => EpsUnits::Raw,
        EpsUnitsArg::Range => EpsUnits::Range,
    };
    Constraints::from_schema(schema, units, norm)
}

/// An ONNX file or an http:// endpoint.
pub fn load_model(
    spec: &str,
    data: &Data,
    protocol: &str,
    headers: &[String],
) -> anyhow::Result<Box<dyn Model>> {
    let model: Box<dyn Model> = if spec.starts_with("http://") || spec.starts_with("https://") {
        let protocol = match protocol.split_once(':') {
            None if protocol == "json" => Protocol::Json,
            Some(("kserve", name)) => Protocol::KServeV2 {
                model: name.to_string(),
            },
            _ => bail!("unknown --protocol {protocol:?}: use json or kserve:MODEL_NAME"),
        };
        let mut config = HttpModelConfig::new(spec, protocol, data.table.n_features());
        config.n_classes = Some(data.table.class_names.len().max(2));
        config.class_names = data.table.class_names.clone();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| "--header must look like 'Name: value'")?;
            config = config.with_header(name.trim(), value.trim());
        }
        Box::new(HttpModel::new(config)?)
    } else {
        aegis_ml::load_onnx(Path::new(spec))?
    };
    check_fit(model.as_ref(), data, spec)?;
    Ok(model)
}

/// The model's inputs and classes must fit the data.
pub fn check_fit(model: &dyn Model, data: &Data, name: &str) -> anyhow::Result<()> {
    if model.n_features() != data.table.n_features() {
        bail!(
            "{name} takes {} input features, the data has {} feature columns ({}); use --drop for columns that are not inputs",
            model.n_features(),
            data.table.n_features(),
            preview(&data.table.columns)
        );
    }
    let classes = model.n_classes();
    if let Some(&bad) = data
        .labels
        .iter()
        .find(|&&y| classes > 0 && y as usize >= classes)
    {
        bail!(
            "label {} ({}) is not one of the {classes} classes of {name}",
            bad,
            data.table
                .class_names
                .get(bad as usize)
                .map_or("?", |s| s.as_str())
        );
    }
    Ok(())
}

fn preview(columns: &[String]) -> String {
    let mut s: Vec<&str> = columns.iter().take(6).map(|c| c.as_str()).collect();
    if columns.len() > 6 {
        s.push("…");
    }
    s.join(", ")
}
