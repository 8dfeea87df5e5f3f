//! Where a finding is: a file (and the member path inside nested archives, and a byte offset), a dataset cell,
//! a model input, or a gateway route.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The place a finding refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A file on disk, optionally a member inside (nested) archives, optionally a byte offset inside the
    /// innermost member (or the file itself when `members` is empty).
    File {
        /// The path as given on the command line or found while walking a directory.
        path: String,
        /// Archive member names from outermost to innermost; empty for the file itself.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<String>,
        /// Byte offset inside the innermost member (or file).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// A dataset, optionally narrowed to a row and/or a column.
    Dataset {
        /// Path of the dataset file.
        path: String,
        /// Zero-based data row (header excluded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        row: Option<u64>,
        /// Column name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
    /// An input feature of a model.
    ModelInput {
        /// Path or name of the model.
        model: String,
        /// Feature name or index.
        feature: String,
    },
    /// A gateway route, optionally narrowed to an API key id.
    Route {
        /// HTTP route, such as `/v1/models/fraud/predict`.
        route: String,
        /// Key id (never the secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

impl Location {
    /// A whole file.
    pub fn file(path: impl Into<String>) -> Self {
        Location::File {
            path: path.into(),
            members: Vec::new(),
            offset: None,
        }
    }

    /// The same location narrowed to a byte offset (only meaningful for files; others are returned unchanged).
    pub fn at_offset(mut self, at: u64) -> Self {
        if let Location::File { offset, .. } = &mut self {
            *offset = Some(at);
        }
        self
    }

    /// The same location one archive level deeper (only meaningful for files).
    pub fn member(mut self, name: impl Into<String>) -> Self {
        if let Location::File {
            members, offset, ..
        } = &mut self
        {
            members.push(name.into());
            *offset = None;
        }
        self
    }

    /// The file path, dataset path, model or route this location is rooted at.
    pub fn root(&self) -> &str {
        match self {
            Location::File { path, .. } | Location::Dataset { path, .. } => path,
            Location::ModelInput { model, .. } => model,
            Location::Route { route, .. } => route,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File {
                path,
                members,
                offset,
            } => {
                f.write_str(path)?;
                for member in members {
                    write!(f, "!{member}")?;
                }
                if let Some(offset) = offset {
                    write!(f, "@{offset:#x}")?;
                }
                Ok(())
            }
            Location::Dataset { path, row, column } => {
                f.write_str(path)?;
                if let Some(row) = row {
                    write!(f, " row {row}")?;
                }
                if let Some(column) = column {
                    write!(f, " column {column}")?;
                }
                Ok(())
            }
            Location::ModelInput { model, feature } => write!(f, "{model} input {feature}"),
            Location::Route { route, key } => {
                f.write_str(route)?;
                if let Some(key) = key {
                    write!(f, " key {key}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_member_with_offset_displays_as_a_path() {
        let loc = Location::file("model.pt")
            .member("archive/data.pkl")
            .at_offset(0x2a);
        assert_eq!(loc.to_string(), "model.pt!archive/data.pkl@0x2a");
        assert_eq!(loc.root(), "model.pt");
    }

    #[test]
    fn round_trips_through_json() {
        let loc = Location::Dataset {
            path: "train.csv".into(),
            row: Some(7),
            column: Some("label".into()),
        };
        let json = serde_json::to_string(&loc).unwrap();
        assert!(json.contains("\"kind\":\"dataset\""));
        assert_eq!(serde_json::from_str::<Location>(&json).unwrap(), loc);
    }
}
