//! Where the gateway's state is: the flags every command that opens the gateway's database shares.

use std::path::PathBuf;

use clap::Args;

/// Where the gateway's configuration and database are.
#[derive(Debug, Args, Clone)]
pub struct GatewayArgs {
    /// Gateway configuration (TOML). Default: built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (embedded database, generated certificate, demo model). Default: ./aegis-data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: aegis.db in the data directory.
    #[arg(long, value_name = "URL", env = "AEGIS_DATABASE_URL")]
    pub database: Option<String>,
}
