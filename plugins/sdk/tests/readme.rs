//! The Rust example of plugins/README.md ("Write one in Rust, with the SDK"), compiled and
//! run as written there, so the guide cannot drift from the SDK.

use alteryx_router_plugin::testing::TestRun;
use alteryx_router_plugin::{Object, Outcome, Request};

#[derive(serde::Deserialize)]
struct Config {
    magic: String,
    workflow: Option<String>,
}

pub fn route(request: &Request, object: &mut Object) -> Result<Outcome, String> {
    let config: Config = request.config()?; // an error names what is wrong
    let (_, tail) = object.read_tail(4); // one ranged read, 4 bytes
    if tail != config.magic.as_bytes() {
        return Ok(Outcome::skip("not the file we want"));
    }
    let values = [("Size", object.size().to_string())];
    Ok(match config.workflow {
        Some(w) => Outcome::workflow(w, values), // must be in request.workflows
        None => Outcome::questions(values),
    })
}

#[test]
fn reads_four_bytes() {
    let ran = TestRun::new("x.parquet", b"PAR1....PAR1".to_vec())
        .config(r#"{"magic": "PAR1"}"#)
        .read_budget(16)
        .run(route);
    assert_eq!(ran.outcome, Ok(Outcome::questions([("Size", "12")])));
    assert_eq!(ran.bytes_read, 4);
}

#[test]
fn the_test_run_applies_the_routers_rules() {
    let ran = TestRun::new("x.parquet", b"PAR1....PAR1".to_vec())
        .config(r#"{"magic": "PAR1", "workflow": "wf-other"}"#)
        .workflows(["rule-workflow", "wf-eu"])
        .run(route);
    assert!(ran.outcome.unwrap_err().contains("`wf-other`"));
    let ran = TestRun::new("x.parquet", b"PAR1....PAR1".to_vec())
        .config(r#"{"magic": "PAR1"}"#)
        .read_budget(3)
        .run(route);
    assert!(ran.outcome.unwrap_err().contains("beyond its read budget"));
    let ran = TestRun::new("x", b"x".to_vec()).config("{}").run(route);
    assert!(
        ran.outcome
            .unwrap_err()
            .contains("plugin.config: missing field `magic`")
    );
}
