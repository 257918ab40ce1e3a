//! parquet-schema: a Parquet file's columns, read from its footer only, and a workflow chosen
//! by schema.
//!
//! Question values: `Columns` (top-level column names, comma-separated), `ColumnCount`,
//! `Rows`. With `config.workflows`, the first entry whose `when_columns` are all present
//! chooses the workflow to run (it must be one of the rule's `plugin.workflows`); with
//! `config.required`, a file missing one of those columns is skipped.

mod thrift;

use alteryx_router_plugin::{Object, Outcome, Request, log};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    required: Vec<String>,
    workflows: Vec<WorkflowWhen>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowWhen {
    when_columns: Vec<String>,
    workflow: String,
}

/// First look at this much of the end: the footer of most files fits.
const FIRST_TAIL: u64 = 16 << 10;

/// The schema in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Top-level column names, in file order.
    pub columns: Vec<String>,
    pub rows: i64,
}

pub fn route(request: &Request, object: &mut Object) -> Result<Outcome, String> {
    let config: Config = request.config()?;
    let schema = read_schema(object)?;
    let has = |c: &String| schema.columns.contains(c);
    let missing: Vec<&str> = config
        .required
        .iter()
        .filter(|c| !has(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Ok(Outcome::skip(format!(
            "the file lacks column(s): {}",
            missing.join(", ")
        )));
    }
    log::info(&format!(
        "{}: {} column(s), {} row(s), {} bytes read of {}",
        request.object.key,
        schema.columns.len(),
        schema.rows,
        object.bytes_read(),
        object.size()
    ));
    let values = [
        ("Columns", schema.columns.join(",")),
        ("ColumnCount", schema.columns.len().to_string()),
        ("Rows", schema.rows.to_string()),
    ];
    match config
        .workflows
        .iter()
        .find(|w| w.when_columns.iter().all(has))
    {
        Some(choice) => Ok(Outcome::workflow(choice.workflow.clone(), values)),
        None => Ok(Outcome::questions(values)),
    }
}

alteryx_router_plugin::export_plugin!(route);

/// Footer: `<metadata> <4-byte little-endian length> PAR1` at the end of the file.
pub fn read_schema(object: &mut Object) -> Result<Schema, String> {
    let size = object.size();
    if size < 12 {
        return Err(format!(
            "not a Parquet file: {size} bytes is too small for one"
        ));
    }
    let (tail_start, mut tail) = object.read_tail(FIRST_TAIL);
    let end = tail.len();
    match &tail[end - 4..] {
        b"PAR1" => {}
        b"PARE" => {
            return Err("the Parquet footer is encrypted; this plugin reads plain footers".into());
        }
        _ => return Err("not a Parquet file: it does not end with PAR1".into()),
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&tail[end - 8..end - 4]);
    let metadata_len = u64::from(u32::from_le_bytes(len));
    if metadata_len + 8 > size {
        return Err(format!(
            "not a valid Parquet file: its footer says {metadata_len} bytes of metadata in a {size}-byte file"
        ));
    }
    let metadata_start = size - 8 - metadata_len;
    if metadata_start < tail_start {
        let mut metadata = object.read_at(metadata_start, tail_start - metadata_start);
        metadata.extend_from_slice(&tail);
        tail = metadata;
    }
    let from = tail.len() - 8 - metadata_len as usize;
    thrift::file_schema(&tail[from..tail.len() - 8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alteryx_router_plugin::testing::TestRun;

    #[test]
    fn what_is_not_parquet_is_said() {
        let ran = TestRun::new("x.parquet", b"Region,Amount\nEU,1\n".to_vec()).run(route);
        assert!(ran.outcome.unwrap_err().contains("does not end with PAR1"));
        let ran = TestRun::new("x.parquet", b"PAR1".to_vec()).run(route);
        assert!(ran.outcome.unwrap_err().contains("too small"));
        let mut lying = b"PAR1xxxx".to_vec();
        lying.extend_from_slice(&1000u32.to_le_bytes());
        lying.extend_from_slice(b"PAR1");
        let ran = TestRun::new("x.parquet", lying).run(route);
        assert!(ran.outcome.unwrap_err().contains("1000 bytes of metadata"));
    }
}
