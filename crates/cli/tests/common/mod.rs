//! What the CLI integration tests share: running the built `aegis` binary, and small pickles built as bytes
//! (never executed).

#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::Command;

/// A pickle that calls `os.system("echo pwned")` (protocol 2), built as bytes; never executed.
pub const EVIL: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
/// A pickle of `{"a": 1}`.
pub const BENIGN: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
/// A pickle instantiating a class nobody allow-listed: `mylab.models.FraudNet()`.
pub const CUSTOM: &[u8] = b"\x80\x02cmylab.models\nFraudNet\nq\x00)\x81q\x01.";

/// Run the `aegis` binary in `cwd` without colour.
pub fn aegis(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run aegis")
}
