//! `alteryx-router plugin compile|run` as a plugin author uses them, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The WAT fixtures of `plugins/fixtures`, assembled into `.wasm` files in a temporary directory.
fn wat_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo_root().join("plugins/fixtures");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wat") {
            let wasm = wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(
                dir.path()
                    .join(path.with_extension("wasm").file_name().unwrap()),
                wasm,
            )
            .unwrap();
        }
    }
    dir
}

/// `alteryx-router plugin compile` and `plugin run`, as a plugin author uses them: a `.wasm` is
/// run (with the fuel it burned), the `.cwasm` beside it runs only when named, and a plugin
/// that loops is stopped with a message naming it while the command fails cleanly.
#[test]
fn plugin_cli_compiles_and_runs_with_fuel_and_time() {
    let dir = wat_dir();
    let bin = env!("CARGO_BIN_EXE_alteryx-router");
    let object = dir.path().join("eu.csv");
    std::fs::write(&object, "Region,Amount\nEU,10\n").unwrap();
    let wasm = dir.path().join("skip.wasm");
    let cwasm = dir.path().join("skip.cwasm");
    let cli = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env_remove("PLUGIN_DIR")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = cli(&[
        "plugin",
        "compile",
        wasm.to_str().unwrap(),
        "-o",
        cwasm.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(std::fs::metadata(&cwasm).unwrap().len() > 0);

    let run_json = |plugin: &Path| {
        let (ok, out, err) = cli(&[
            "--json",
            "plugin",
            "run",
            plugin.to_str().unwrap(),
            "--key",
            "incoming/eu.csv",
            "--object",
            object.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    // The .wasm itself, although a .cwasm of the same name sits beside it; fuel is counted.
    let report = run_json(&wasm);
    assert_eq!(report["outcome"], "skip");
    assert_eq!(report["skip_reason"], "wat says hi");
    assert!(report["fuel_used"].as_u64().unwrap() > 0, "{report}");
    assert!(report["call_ms"].as_f64().unwrap() > 0.0);
    // The .cwasm: same answer, loaded without compiling, not metered.
    let report = run_json(&cwasm);
    assert_eq!(report["skip_reason"], "wat says hi");
    assert!(report["fuel_used"].is_null(), "{report}");

    let (ok, out, err) = cli(&[
        "plugin",
        "run",
        dir.path().join("loop.wasm").to_str().unwrap(),
        "--object",
        object.to_str().unwrap(),
        "--timeout-ms",
        "100",
    ]);
    assert!(!ok, "a looping plugin must fail the command: {out}");
    assert!(err.contains("loop") && err.contains("100ms"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `plugin run --member` (repeated): a 0.3.0 plugin built from source (`batch-manifest`) runs
/// over a batch of local files, sees them in the order given, and its member reads are shown;
/// a 0.1.0 plugin is refused on the batch with the message naming the interface batches need.
#[test]
fn plugin_run_over_a_batch_of_members() {
    let Some(built) = std::env::var_os("BUILT_PLUGINS_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("batch-manifest.wasm").exists())
    else {
        match std::env::var("RUST_PLUGIN_SKIP_REASON") {
            Ok(reason) => {
                eprintln!("SKIPPED plugin_run_over_a_batch_of_members: {reason}");
                return;
            }
            Err(_) => panic!(
                "batch-manifest.wasm not in BUILT_PLUGINS_DIR: run scripts/test, or plugins/build-rust.sh DIR and set BUILT_PLUGINS_DIR=DIR"
            ),
        }
    };
    let dir = wat_dir();
    let bin = env!("CARGO_BIN_EXE_alteryx-router");
    let orders = dir.path().join("orders.csv");
    let ledger = dir.path().join("ledger.csv");
    std::fs::write(&orders, "order_id,customer_id,amount\n1,7,9.50\n").unwrap();
    std::fs::write(&ledger, "account,amount\n4000,9.50\n").unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env_remove("PLUGIN_DIR")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let plugin = built.join("batch-manifest.wasm");
    let members = [
        "--member",
        orders.to_str().unwrap(),
        "--member",
        ledger.to_str().unwrap(),
    ];
    let mut args = vec!["--json", "plugin", "run", plugin.to_str().unwrap()];
    args.extend(members);
    args.extend([
        "--bucket",
        "landing",
        "--group",
        "2026-10",
        "--config",
        r#"{"columns": ["amount"], "separator": ","}"#,
    ]);
    let (ok, out, err) = cli(&args);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["interface"], "0.3.0");
    assert_eq!(
        report["members"],
        serde_json::json!(["s3://landing/orders.csv", "s3://landing/ledger.csv"])
    );
    assert_eq!(
        report["questions"],
        serde_json::json!([
            ["Matching", "orders.csv,ledger.csv"],
            ["MatchCount", "2"],
            ["MemberCount", "2"],
            ["Group", "2026-10"]
        ])
    );
    assert_eq!(
        report["reads"]["member_ranges"],
        serde_json::json!([
            {"member": 0, "offset": 0, "length": 37},
            {"member": 1, "offset": 0, "length": 25}
        ])
    );

    // The person's view lists the members and each member read.
    let mut args = vec!["plugin", "run", plugin.to_str().unwrap()];
    args.extend(members);
    let (ok, out, err) = cli(&args);
    assert!(ok, "{err}");
    assert!(
        out.contains("batch of 2 member(s):")
            && out.contains("member 1: s3://local/ledger.csv")
            && out.contains("read 25 bytes at offset 0 of member 1"),
        "{out}"
    );

    // A 0.1.0 plugin on a batch: refused, naming its interface and the one batches need.
    let skip = dir.path().join("skip.wasm");
    let mut args = vec!["plugin", "run", skip.to_str().unwrap()];
    args.extend(members);
    let (ok, _, err) = cli(&args);
    assert!(!ok);
    assert!(
        err.contains("implements interface 0.1.0, which has no batches")
            && err.contains("alteryx-router:plugin@0.3.0"),
        "{err}"
    );

    // Two members with one name would be one object: refused before anything runs.
    let mut args = vec!["plugin", "run", plugin.to_str().unwrap()];
    args.extend(["--member", orders.to_str().unwrap()]);
    args.extend(["--member", orders.to_str().unwrap()]);
    let (ok, _, err) = cli(&args);
    assert!(
        !ok && err.contains("would both be s3://local/orders.csv"),
        "{err}"
    );
}
