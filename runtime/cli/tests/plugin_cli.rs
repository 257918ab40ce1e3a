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
