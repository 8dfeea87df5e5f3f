//! `aegis vault` end to end through the real binary: key generation, encryption and decryption of files,
//! standard input and directory trees (binary and armored, recipients and passphrase files), failures that
//! leave no output, rotation, signing and verification with named differences, and `aegis scan` with a trust
//! policy. Interoperability with the `age` CLI is tested in `aegis-vault`'s own tests.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::aegis;
use serde_json::Value;

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `aegis vault keygen -o NAME` in `dir`; returns the recipient printed on stderr.
fn keygen(dir: &Path, name: &str) -> String {
    let out = aegis(&["vault", "keygen", "-o", name], dir);
    ok(&out);
    let err = stderr(&out);
    err.lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .expect("recipient printed")
        .trim()
        .to_string()
}

/// `aegis vault encrypt -r RECIPIENT -o OUTPUT INPUT` in `dir`.
fn encrypt_to(recipient: &str, input: &str, output: &str, dir: &Path) -> std::process::Output {
    aegis(
        &["vault", "encrypt", "-r", recipient, "-o", output, input],
        dir,
    )
}

#[test]
fn files_round_trip_and_failures_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let recipient = keygen(d, "id.agekey");
    assert!(recipient.starts_with("age1"));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("model.onnx"), &data).unwrap();

    ok(&encrypt_to(&recipient, "model.onnx", "model.onnx.age", d));
    ok(&aegis(
        &[
            "vault",
            "decrypt",
            "-i",
            "id.agekey",
            "-o",
            "back.onnx",
            "model.onnx.age",
        ],
        d,
    ));
    assert_eq!(std::fs::read(d.join("back.onnx")).unwrap(), data);
    // An existing output is refused unless --force.
    let out = aegis(
        &[
            "vault",
            "decrypt",
            "-i",
            "id.agekey",
            "-o",
            "back.onnx",
            "model.onnx.age",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    ok(&aegis(
        &[
            "vault",
            "decrypt",
            "-i",
            "id.agekey",
            "--force",
            "-o",
            "back.onnx",
            "model.onnx.age",
        ],
        d,
    ));

    // Armor, and several recipients from a file.
    let second = keygen(d, "id2.agekey");
    std::fs::write(
        d.join("team.txt"),
        format!("# team\n{recipient}\n{second}\n"),
    )
    .unwrap();
    ok(&aegis(
        &[
            "vault",
            "encrypt",
            "-R",
            "team.txt",
            "-a",
            "-o",
            "m.asc",
            "model.onnx",
        ],
        d,
    ));
    let armored = std::fs::read_to_string(d.join("m.asc")).unwrap();
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    ok(&aegis(
        &[
            "vault",
            "decrypt",
            "-i",
            "id2.agekey",
            "-o",
            "two.onnx",
            "m.asc",
        ],
        d,
    ));
    assert_eq!(std::fs::read(d.join("two.onnx")).unwrap(), data);

    // Tampered and truncated ciphertext, the wrong key: exit 2, the file named, no output left.
    let mut ct = std::fs::read(d.join("model.onnx.age")).unwrap();
    let last = ct.len() - 20;
    ct[last] ^= 1;
    std::fs::write(d.join("tampered.age"), &ct).unwrap();
    std::fs::write(d.join("short.age"), &ct[..ct.len() / 2]).unwrap();
    let other = keygen(d, "other.agekey");
    assert!(other.starts_with("age1"));
    for (input, key) in [
        ("tampered.age", "id.agekey"),
        ("short.age", "id.agekey"),
        ("model.onnx.age", "other.agekey"),
    ] {
        let out = aegis(&["vault", "decrypt", "-i", key, "-o", "out.onnx", input], d);
        assert_eq!(out.status.code(), Some(2), "{input}");
        assert!(stderr(&out).contains(input), "{input}: {}", stderr(&out));
        assert!(
            !d.join("out.onnx").exists(),
            "{input} left plaintext behind"
        );
    }
    // Nothing else appeared in the directory (no temporary files).
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".aegis-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(unix)]
#[test]
fn key_files_are_owner_only_and_loose_ones_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "id.agekey");
    let mode = std::fs::metadata(d.join("id.agekey"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Never overwritten.
    let out = aegis(&["vault", "keygen", "-o", "id.agekey"], d);
    assert_eq!(out.status.code(), Some(2));
    std::fs::set_permissions(d.join("id.agekey"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(d.join("x.age"), b"not age").unwrap();
    let out = aegis(
        &["vault", "decrypt", "-i", "id.agekey", "-o", "x", "x.age"],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("AGE-SECRET-KEY"));
}

#[test]
fn standard_streams_passphrase_files_trees_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let recipient = keygen(d, "id.agekey");
    // stdin -> stdout, armored.
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["vault", "encrypt", "-a", "-r", &recipient])
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello vault")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    ok(&out);
    std::fs::write(d.join("hello.asc"), &out.stdout).unwrap();
    let out = aegis(&["vault", "decrypt", "-i", "id.agekey", "hello.asc"], d);
    ok(&out);
    assert_eq!(out.stdout, b"hello vault");

    // A passphrase from an owner-only file (the terminal prompt is the interactive path).
    let pass = d.join("pass.txt");
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    f.open(&pass)
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    std::fs::write(d.join("small.csv"), b"a,b\n1,2\n").unwrap();
    ok(&aegis(
        &[
            "vault",
            "encrypt",
            "--passphrase-file",
            "pass.txt",
            "-o",
            "small.csv.age",
            "small.csv",
        ],
        d,
    ));
    ok(&aegis(
        &[
            "vault",
            "decrypt",
            "--decrypt-passphrase-file",
            "pass.txt",
            "-o",
            "small2.csv",
            "small.csv.age",
        ],
        d,
    ));
    assert_eq!(std::fs::read(d.join("small2.csv")).unwrap(), b"a,b\n1,2\n");

    // A directory tree, then rotation of its files to a new key.
    std::fs::create_dir_all(d.join("models/sub")).unwrap();
    std::fs::write(d.join("models/a.bin"), b"aaa").unwrap();
    std::fs::write(d.join("models/sub/b.bin"), b"bbbb").unwrap();
    ok(&aegis(
        &["vault", "encrypt", "-r", &recipient, "-o", "enc", "models"],
        d,
    ));
    assert!(d.join("enc/sub/b.bin.age").is_file());
    let new = keygen(d, "new.agekey");
    ok(&aegis(
        &[
            "vault",
            "rotate",
            "-i",
            "id.agekey",
            "-r",
            &new,
            "enc/a.bin.age",
            "enc/sub/b.bin.age",
        ],
        d,
    ));
    let out = aegis(
        &["vault", "decrypt", "-i", "id.agekey", "-o", "dec", "enc"],
        d,
    );
    assert_eq!(out.status.code(), Some(2), "the old key still decrypts");
    ok(&aegis(
        &["vault", "decrypt", "-i", "new.agekey", "-o", "dec", "enc"],
        d,
    ));
    assert_eq!(std::fs::read(d.join("dec/sub/b.bin")).unwrap(), b"bbbb");
}

#[test]
fn sign_verify_and_scan_with_a_trust_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&aegis(
        &["vault", "keygen", "--sign", "-o", "release.key"],
        d,
    ));
    assert!(d.join("release.key.pub").is_file());
    std::fs::create_dir_all(d.join("model/shards")).unwrap();
    std::fs::write(d.join("model/config.json"), b"{\"layers\": 2}").unwrap();
    std::fs::write(d.join("model/shards/w1.bin"), vec![1u8; 5000]).unwrap();
    std::fs::write(d.join("model/shards/w2.bin"), vec![2u8; 5000]).unwrap();

    // Unsigned: scan with a trust policy reports it, verify fails.
    let scan = aegis(
        &[
            "scan",
            "model",
            "--trusted-key",
            "release.key.pub",
            "--format",
            "json",
        ],
        d,
    );
    let report: Value = serde_json::from_slice(&scan.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["AEG-VAULT-001"], "{report}");
    assert_eq!(scan.status.code(), Some(1));
    // Without a trust policy, no such finding.
    let scan = aegis(&["scan", "model", "--format", "json"], d);
    let report: Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report}"
    );

    ok(&aegis(
        &["vault", "sign", "model", "--key", "release.key"],
        d,
    ));
    assert!(d.join("model/model.sig").is_file());
    ok(&aegis(
        &["vault", "verify", "model", "--key", "release.key.pub"],
        d,
    ));
    let scan = aegis(
        &[
            "scan",
            "model",
            "--trusted-key",
            "release.key.pub",
            "--format",
            "json",
        ],
        d,
    );
    ok(&scan);

    // Tamper: one byte changed, one file removed, one added; every difference named, exit 1.
    std::fs::write(d.join("model/shards/w1.bin"), {
        let mut v = vec![1u8; 5000];
        v[10] = 9;
        v
    })
    .unwrap();
    std::fs::remove_file(d.join("model/shards/w2.bin")).unwrap();
    std::fs::write(d.join("model/extra.py"), b"print(1)").unwrap();
    let out = aegis(
        &[
            "vault",
            "verify",
            "model",
            "--key",
            "release.key.pub",
            "--format",
            "json",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "AEG-VAULT-003");
    assert_eq!(f["evidence"]["modified"][0], "shards/w1.bin");
    assert_eq!(f["evidence"]["missing"][0], "shards/w2.bin");
    assert_eq!(f["evidence"]["extra"][0], "extra.py");

    // Another key: the signature is not trusted.
    ok(&aegis(&["vault", "keygen", "--sign", "-o", "other.key"], d));
    let out = aegis(
        &[
            "vault",
            "verify",
            "model",
            "--key",
            "other.key.pub",
            "--format",
            "json",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["rule"], "AEG-VAULT-002");
    // A key that cannot be read is a failure of the tool (exit 2), not a finding about the model.
    let out = aegis(&["vault", "verify", "model", "--key", "missing.pub"], d);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.pub"), "{}", stderr(&out));
    // A trust policy file works the same as --key.
    std::fs::write(d.join("trust.toml"), "trusted_keys = [\"other.key.pub\"]\n").unwrap();
    let out = aegis(
        &["vault", "verify", "model", "--trust-policy", "trust.toml"],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_shows_examples_and_age_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = aegis(&["vault", "encrypt", "--help"], dir.path());
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "-r, --recipient",
        "-R, --recipients-file",
        "-p, --passphrase",
        "-a, --armor",
        "Examples:",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Usage errors: no recipient.
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let out = aegis(&["vault", "encrypt", "-o", "f.age", "f"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no recipients"), "{}", stderr(&out));
}

/// Run `aegis ARGS` in `dir` inside a pseudo-terminal (util-linux `script`), typing `typed` at it: the
/// passphrase prompts read `/dev/tty`, as a person at a terminal would answer them.
fn aegis_at_terminal(args: &str, typed: &str, dir: &Path) -> std::process::Output {
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_aegis"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the binary in a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn passphrase_typed_at_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("weights.bin"), b"model weights").unwrap();

    // Asked twice; the answers must match, else nothing is written.
    let out = aegis_at_terminal(
        "vault encrypt -p -o w.age weights.bin",
        "first try\nsecond try\n",
        d,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("do not match"),
        "{out:?}"
    );
    assert!(!d.join("w.age").exists());

    let out = aegis_at_terminal(
        "vault encrypt -p -o w.age weights.bin",
        "correct horse\ncorrect horse\n",
        d,
    );
    ok(&out);
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        screen.contains("passphrase:") && screen.contains("confirm:"),
        "{screen}"
    );

    // The wrong passphrase is refused and leaves no plaintext; the right one decrypts.
    let out = aegis_at_terminal("vault decrypt -o back.bin w.age", "battery staple\n", d);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong passphrase"));
    assert!(!d.join("back.bin").exists());
    ok(&aegis_at_terminal(
        "vault decrypt -o back.bin w.age",
        "correct horse\n",
        d,
    ));
    assert_eq!(std::fs::read(d.join("back.bin")).unwrap(), b"model weights");

    // A typed passphrase and a passphrase file at once: refused before anything runs.
    std::fs::write(d.join("pass.txt"), "x\n").unwrap();
    let out = aegis(
        &[
            "vault",
            "encrypt",
            "-p",
            "--passphrase-file",
            "pass.txt",
            "-o",
            "y.age",
            "weights.bin",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("y.age").exists());

    // Without a terminal (a new session, as under cron), `-p` points to --passphrase-file instead of hanging.
    let out = Command::new("setsid")
        .args(["-w", env!("CARGO_BIN_EXE_aegis")])
        .args(["vault", "encrypt", "-p", "-o", "x.age", "weights.bin"])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--passphrase-file"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("x.age").exists());
}

#[test]
fn model_list_shows_an_encrypted_signed_model_and_refuses_an_untrusted_signer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/assets");
    std::fs::copy(assets.join("demo-fraud.onnx"), d.join("fraud.onnx")).unwrap();
    let schema = assets.join("demo-fraud.schema.toml");
    let recipient = keygen(d, "gateway.agekey");
    ok(&aegis(
        &["vault", "keygen", "--sign", "-o", "release.key"],
        d,
    ));
    ok(&aegis(&["vault", "keygen", "--sign", "-o", "other.key"], d));
    ok(&aegis(
        &["vault", "sign", "fraud.onnx", "--key", "release.key"],
        d,
    ));
    ok(&encrypt_to(&recipient, "fraud.onnx", "fraud.onnx.age", d));
    // Only the encrypted model and its signature stay on disk.
    std::fs::remove_file(d.join("fraud.onnx")).unwrap();
    let config = |trusted: &str, extra: &str| {
        std::fs::write(
            d.join("models.toml"),
            format!(
                "[[model]]\nname = \"fraud\"\npath = \"fraud.onnx.age\"\nschema = {schema:?}\n\
                 identity = \"gateway.agekey\"\ntrusted_keys = [\"{trusted}\"]\n{extra}"
            ),
        )
        .unwrap();
        aegis(&["model", "list", "--config", "models.toml"], d)
    };

    let out = config("release.key.pub", "");
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("fraud") && text.contains("decrypted in memory"),
        "{text}"
    );
    assert!(text.contains("signature verified (key "), "{text}");

    // Signed, but not by a trusted key: refused, with the reason.
    let out = config("other.key.pub", "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("REFUSED"), "{text}");
    assert!(!text.contains("signature verified"), "{text}");

    // The explicit override serves it, marked unverified.
    let out = config("other.key.pub", "allow_unverified = true\n");
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("UNVERIFIED ("), "{text}");
}
