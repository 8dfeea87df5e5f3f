//! The inventory: models, datasets and endpoints, their versions and the links between them.
//!
//! An asset has a unique name people use (`fraud`, `fraud-test`), an owner, tags for routing alerts, and
//! settings the checks need (a dataset's label column, columns that are not model inputs). Each version is the
//! SHA-256 of its content; registering the same content again is not a new version. Links say which dataset
//! trained a model (`trained_on`), tests it (`evaluated_on`) or is the reference for drift (`reference`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::objects::{self, StoredFile};
use crate::{now_secs, Error, Result, Store};

/// What an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// A model file or directory.
    Model,
    /// A table (CSV or Parquet).
    Dataset,
    /// A model served elsewhere, reached over HTTP.
    Endpoint,
}

impl AssetKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Model => "model",
            AssetKind::Dataset => "dataset",
            AssetKind::Endpoint => "endpoint",
        }
    }

    fn parse(s: &str) -> Result<AssetKind> {
        match s {
            "model" => Ok(AssetKind::Model),
            "dataset" => Ok(AssetKind::Dataset),
            "endpoint" => Ok(AssetKind::Endpoint),
            other => Err(Error::Corrupt(format!("unknown asset kind {other:?}"))),
        }
    }
}

/// How a model relates to a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The model was trained on the dataset (its members, for membership inference).
    TrainedOn,
    /// The model is evaluated on the dataset (robustness, privacy non-members).
    EvaluatedOn,
    /// The dataset is the reference distribution for drift.
    Reference,
}

impl Relation {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::TrainedOn => "trained_on",
            Relation::EvaluatedOn => "evaluated_on",
            Relation::Reference => "reference",
        }
    }

    /// Parse a stored or typed name.
    pub fn parse(s: &str) -> Result<Relation> {
        match s {
            "trained_on" | "training" | "train" => Ok(Relation::TrainedOn),
            "evaluated_on" | "test" => Ok(Relation::EvaluatedOn),
            "reference" => Ok(Relation::Reference),
            other => Err(Error::Invalid(format!(
                "unknown link {other:?}: use trained_on, evaluated_on or reference"
            ))),
        }
    }
}

/// What the checks need to know about an asset beyond its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssetSettings {
    /// A dataset's label column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A dataset's columns that are not model inputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
    /// The gateway model name a model serves under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serves_as: Option<String>,
}

/// A registered asset.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// Stable id (`ast_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Model, dataset or endpoint.
    pub kind: AssetKind,
    /// A dataset's role (`training`, `test`, `reference`) or empty.
    pub role: String,
    /// Who answers for it.
    pub owner: String,
    /// Labels for routing and filtering.
    pub tags: Vec<String>,
    /// An endpoint's URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// What the checks need.
    pub settings: AssetSettings,
    /// Unix seconds.
    pub created: i64,
    /// The newest version, if any.
    pub latest: Option<Version>,
}

/// One version of an asset.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// Stable id (`ver_…`).
    pub id: String,
    /// The asset's id.
    pub asset_id: String,
    /// 1 for the first version, then 2, 3…
    pub seq: i64,
    /// SHA-256 of the file, or of a directory's manifest.
    pub sha256: String,
    /// The file or directory name as registered.
    pub filename: String,
    /// Total bytes.
    pub size: u64,
    /// The stored files (one for a file asset).
    pub files: Vec<StoredFile>,
    /// The stored detached signature (`FILE.sig`, `DIR/model.sig`) that came with it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<StoredFile>,
    /// Where it came from (a path, `upload`, `gateway`).
    pub source: String,
    /// Unix seconds.
    pub created: i64,
}

/// What [`Store::create_asset`] needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewAsset {
    /// Unique name: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `model`, `dataset` or `endpoint`.
    pub kind: Option<AssetKind>,
    /// A dataset's role.
    pub role: String,
    /// Who answers for it.
    pub owner: String,
    /// Labels.
    pub tags: Vec<String>,
    /// An endpoint's URL.
    pub endpoint: String,
    /// What the checks need.
    pub settings: AssetSettings,
}

/// Check a user-chosen name: 1 to 64 of letters, digits, `-`, `_`, `.`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "asset name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.' or '-'"
        )))
    }
}

const ASSET_COLUMNS: &str = "id, name, kind, role, owner, tags, endpoint, settings, created";
const VERSION_COLUMNS: &str =
    "id, asset_id, seq, sha256, filename, size, files, signature, source, created";

impl Store {
    /// Register a new asset (no version yet).
    pub async fn create_asset(&self, new: NewAsset) -> Result<Asset> {
        check_name(&new.name)?;
        let kind = new.kind.ok_or_else(|| {
            Error::Invalid("say what the asset is: kind model, dataset or endpoint".into())
        })?;
        if kind == AssetKind::Endpoint
            && !(new.endpoint.starts_with("http://") || new.endpoint.starts_with("https://"))
        {
            return Err(Error::Invalid(format!(
                "endpoint {:?} must be an http:// or https:// URL",
                new.endpoint
            )));
        }
        for tag in &new.tags {
            check_name(tag).map_err(|_| {
                Error::Invalid(format!(
                    "tag {tag:?} must be letters, digits, '-', '_' or '.'"
                ))
            })?;
        }
        let _guard = self.write_guard().await;
        if self.find_asset(&new.name).await?.is_some() {
            return Err(Error::Invalid(format!(
                "an asset named {} exists already; add a version to it instead, or choose another name",
                new.name
            )));
        }
        let id = crate::ids::new_id("ast");
        let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into());
        let settings = serde_json::to_string(&new.settings).unwrap_or_else(|_| "{}".into());
        sqlx::query(
            "INSERT INTO assets (id, name, kind, role, owner, tags, endpoint, settings, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(kind.as_str())
        .bind(&new.role)
        .bind(&new.owner)
        .bind(tags)
        .bind(&new.endpoint)
        .bind(settings)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(Error::db("create an asset"))?;
        self.asset(&id).await
    }

    /// The asset named (or with the id) `key`, removed ones excluded.
    pub async fn find_asset(&self, key: &str) -> Result<Option<Asset>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE (name = $1 OR id = $1) AND removed = 0"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read an asset"))?;
        match row {
            Some(row) => Ok(Some(self.asset_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// The asset named (or with the id) `key`, or a not-found error that says how to list them.
    pub async fn asset(&self, key: &str) -> Result<Asset> {
        self.find_asset(key).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no asset named {key}; `aegis asset list` shows the registered ones"
            ))
        })
    }

    /// Every asset (of one kind), by name.
    pub async fn list_assets(&self, kind: Option<AssetKind>) -> Result<Vec<Asset>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE removed = 0 AND ($1 = '' OR kind = $1) ORDER BY name"
        )))
        .bind(kind.map_or("", AssetKind::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("list assets"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.asset_from_row(row).await?);
        }
        Ok(out)
    }

    /// Remove an asset from the inventory: its schedules and queued jobs go, its history (versions, runs,
    /// findings) stays for the audit trail, and its name is free again.
    pub async fn remove_asset(&self, key: &str) -> Result<Asset> {
        let asset = self.asset(key).await?;
        let _guard = self.write_guard().await;
        let now = now_secs();
        // The name is released by renaming the removed row (names are unique among all rows).
        sqlx::query("UPDATE assets SET removed = $1, name = $2 WHERE id = $3")
            .bind(now)
            .bind(format!("{}~removed~{}", asset.name, asset.id))
            .bind(&asset.id)
            .execute(&self.pool)
            .await
            .map_err(Error::db("remove an asset"))?;
        for statement in [
            "DELETE FROM schedules WHERE asset_id = $1",
            "DELETE FROM jobs WHERE asset_id = $1 AND state = 'queued'",
            "DELETE FROM asset_links WHERE from_asset = $1 OR to_asset = $1",
        ] {
            sqlx::query(statement)
                .bind(&asset.id)
                .execute(&self.pool)
                .await
                .map_err(Error::db("remove an asset"))?;
        }
        Ok(asset)
    }

    /// Change an asset's owner, tags or settings (absent fields keep their value).
    pub async fn update_asset(
        &self,
        key: &str,
        owner: Option<String>,
        tags: Option<Vec<String>>,
        settings: Option<AssetSettings>,
    ) -> Result<Asset> {
        let mut asset = self.asset(key).await?;
        if let Some(o) = owner {
            asset.owner = o;
        }
        if let Some(t) = tags {
            asset.tags = t;
        }
        if let Some(s) = settings {
            asset.settings = s;
        }
        let _guard = self.write_guard().await;
        sqlx::query("UPDATE assets SET owner = $1, tags = $2, settings = $3 WHERE id = $4")
            .bind(&asset.owner)
            .bind(serde_json::to_string(&asset.tags).unwrap_or_default())
            .bind(serde_json::to_string(&asset.settings).unwrap_or_default())
            .bind(&asset.id)
            .execute(&self.pool)
            .await
            .map_err(Error::db("update an asset"))?;
        Ok(asset)
    }

    /// Store the file or directory at `path` as the asset's next version, with its detached signature when
    /// one lies beside it. Returns the version and whether it is new (the same content as the latest version
    /// is not a new version).
    pub async fn add_version_from_path(
        &self,
        asset: &Asset,
        path: &Path,
        max_bytes: u64,
    ) -> Result<(Version, bool)> {
        let meta = std::fs::metadata(path).map_err(Error::io("read", path))?;
        let data_dir = self.data_dir.clone();
        let owned = path.to_path_buf();
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let name = filename.clone();
        let is_dir = meta.is_dir();
        let at_rest = self.at_rest.clone();
        let (sha256, files, signature) = tokio::task::spawn_blocking(move || {
            let at_rest = at_rest.as_ref();
            let files = if is_dir {
                objects::put_dir(&data_dir, &owned, max_bytes, at_rest)?
            } else {
                let (sha256, size) = objects::put_file(&data_dir, &owned, max_bytes, at_rest)?;
                vec![StoredFile {
                    path: name,
                    sha256,
                    size,
                }]
            };
            let sha = if is_dir {
                objects::manifest_hash(&files)
            } else {
                files[0].sha256.clone()
            };
            let sig_path = aegis_vault::signature::default_signature_path(&owned);
            // A directory's `model.sig` is already one of its files; a file's `FILE.sig` lies beside it.
            let signature = if !is_dir && sig_path.is_file() {
                let (sha256, size) =
                    objects::put_file(&data_dir, &sig_path, 64 * 1024 * 1024, at_rest)?;
                Some(StoredFile {
                    path: format!(
                        "{}",
                        sig_path.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    sha256,
                    size,
                })
            } else {
                None
            };
            Ok::<_, Error>((sha, files, signature))
        })
        .await
        .map_err(|e| Error::Check(format!("storing {}: {e}", path.display())))??;
        self.add_version(
            asset,
            &sha256,
            &filename,
            files,
            signature,
            &path.display().to_string(),
        )
        .await
    }

    /// Record a version whose files are stored already (uploads, paths). Returns it and whether it is new.
    pub async fn add_version(
        &self,
        asset: &Asset,
        sha256: &str,
        filename: &str,
        files: Vec<StoredFile>,
        signature: Option<StoredFile>,
        source: &str,
    ) -> Result<(Version, bool)> {
        if let Some(latest) = &asset.latest {
            if latest.sha256 == sha256 {
                return Ok((latest.clone(), false));
            }
        }
        let _guard = self.write_guard().await;
        let seq: i64 = sqlx::query(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) AS seq FROM asset_versions WHERE asset_id = $1",
        )
        .bind(&asset.id)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("seq"))
        .map_err(Error::db("number a version"))?;
        let size: u64 = files.iter().map(|f| f.size).sum();
        let version = Version {
            id: crate::ids::new_id("ver"),
            asset_id: asset.id.clone(),
            seq: seq + 1,
            sha256: sha256.to_string(),
            filename: filename.to_string(),
            size,
            files,
            signature,
            source: source.to_string(),
            created: now_secs(),
        };
        sqlx::query(
            "INSERT INTO asset_versions (id, asset_id, seq, sha256, filename, size, files, signature, source, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&version.id)
        .bind(&version.asset_id)
        .bind(version.seq)
        .bind(&version.sha256)
        .bind(&version.filename)
        .bind(version.size as i64)
        .bind(serde_json::to_string(&version.files).unwrap_or_default())
        .bind(
            version
                .signature
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default())
                .unwrap_or_default(),
        )
        .bind(&version.source)
        .bind(version.created)
        .execute(&self.pool)
        .await
        .map_err(Error::db("record a version"))?;
        Ok((version, true))
    }

    /// Every version of an asset, newest first.
    pub async fn versions(&self, asset_id: &str) -> Result<Vec<Version>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM asset_versions WHERE asset_id = $1 ORDER BY seq DESC"
        )))
        .bind(asset_id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("list versions"))?;
        rows.iter().map(version_from_row).collect()
    }

    /// One version by id.
    pub async fn version(&self, id: &str) -> Result<Version> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM asset_versions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read a version"))?
        .ok_or_else(|| Error::NotFound(format!("no version {id}")))?;
        version_from_row(&row)
    }

    /// Link a model to a dataset.
    pub async fn link(&self, model: &Asset, relation: Relation, dataset: &Asset) -> Result<()> {
        if model.kind == AssetKind::Dataset || dataset.kind != AssetKind::Dataset {
            return Err(Error::Invalid(format!(
                "a link goes from a model to a dataset ({} is a {}, {} is a {})",
                model.name,
                model.kind.as_str(),
                dataset.name,
                dataset.kind.as_str()
            )));
        }
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO asset_links (from_asset, relation, to_asset) VALUES ($1, $2, $3)
             ON CONFLICT (from_asset, relation, to_asset) DO NOTHING",
        )
        .bind(&model.id)
        .bind(relation.as_str())
        .bind(&dataset.id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("link assets"))?;
        Ok(())
    }

    /// The datasets linked from a model, by relation, as `(relation, dataset)`.
    pub async fn links(&self, model_id: &str) -> Result<Vec<(Relation, Asset)>> {
        let rows = sqlx::query(
            "SELECT relation, to_asset FROM asset_links WHERE from_asset = $1 ORDER BY relation, to_asset",
        )
        .bind(model_id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read links"))?;
        let mut out = Vec::new();
        for row in rows {
            let relation: String = row.try_get("relation").map_err(Error::db("read links"))?;
            let to: String = row.try_get("to_asset").map_err(Error::db("read links"))?;
            if let Some(asset) = self.find_asset(&to).await? {
                out.push((Relation::parse(&relation)?, asset));
            }
        }
        Ok(out)
    }

    /// The models that link to a dataset.
    pub async fn linked_models(&self, dataset_id: &str) -> Result<Vec<Asset>> {
        let rows = sqlx::query("SELECT DISTINCT from_asset FROM asset_links WHERE to_asset = $1")
            .bind(dataset_id)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("read links"))?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.try_get("from_asset").map_err(Error::db("read links"))?;
            if let Some(asset) = self.find_asset(&id).await? {
                out.push(asset);
            }
        }
        Ok(out)
    }

    async fn asset_from_row(&self, row: &AnyRow) -> Result<Asset> {
        let get = |name: &str| -> Result<String> {
            row.try_get::<String, _>(name)
                .map_err(Error::db("read an asset"))
        };
        let id = get("id")?;
        let latest = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM asset_versions WHERE asset_id = $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read a version"))?;
        Ok(Asset {
            name: get("name")?,
            kind: AssetKind::parse(&get("kind")?)?,
            role: get("role")?,
            owner: get("owner")?,
            tags: serde_json::from_str(&get("tags")?).unwrap_or_default(),
            endpoint: get("endpoint")?,
            settings: serde_json::from_str(&get("settings")?).unwrap_or_default(),
            created: row.try_get("created").map_err(Error::db("read an asset"))?,
            latest: latest.as_ref().map(version_from_row).transpose()?,
            id,
        })
    }
}

fn version_from_row(row: &AnyRow) -> Result<Version> {
    let err = Error::db("read a version");
    let get = |name: &str| -> Result<String> {
        row.try_get::<String, _>(name)
            .map_err(Error::db("read a version"))
    };
    let signature = get("signature")?;
    Ok(Version {
        id: get("id")?,
        asset_id: get("asset_id")?,
        seq: row.try_get("seq").map_err(err)?,
        sha256: get("sha256")?,
        filename: get("filename")?,
        size: row
            .try_get::<i64, _>("size")
            .map_err(Error::db("read a version"))? as u64,
        files: serde_json::from_str(&get("files")?)
            .map_err(|e| Error::Corrupt(format!("version files: {e}")))?,
        signature: if signature.is_empty() {
            None
        } else {
            serde_json::from_str(&signature).ok()
        },
        source: get("source")?,
        created: row
            .try_get("created")
            .map_err(Error::db("read a version"))?,
    })
}
