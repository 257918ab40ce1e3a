//! How jobs look from outside: the Gallery API's job objects (v1 and v3 spell fields
//! differently; a workflow's job list has a reduced shape), their messages and outputs, and
//! [`ReceivedJob`], the admin API's record of what a client sent. Field names follow the
//! sources cited in `docs/emulator.md`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::jobs::{Api, Job, Phase};

/// A job as the emulator received it, with its current state (`GET /_emulator/jobs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceivedJob {
    pub id: String,
    pub workflow_id: String,
    /// `v1` or `v3`: the API version of the request.
    pub api: String,
    pub questions: Vec<(String, String)>,
    /// As sent (v1 lower case, v3 capitalised).
    pub priority: Option<String>,
    pub status: String,
    pub disposition: Option<String>,
    /// Arrival, RFC 3339 UTC with nanoseconds.
    pub created_at: String,
    /// When the request arrived, in Unix milliseconds (µs precision), so a harness on the same
    /// machine can time "process started → job received" without polling.
    #[serde(default)]
    pub received_unix_ms: f64,
    /// v3 `workerTag` (validated against the server's worker tags).
    #[serde(default)]
    pub worker_tag: Option<String>,
    /// v3 `credentialId` (validated against the server's credential ids).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Request fields this API version does not apply (`workerTag`, `credentialId` on v1).
    #[serde(default)]
    pub ignored_fields: Vec<String>,
    /// When the job got a worker slot (Unix ms), if it has.
    #[serde(default)]
    pub started_unix_ms: Option<f64>,
    /// When it ended (Unix ms), if it has.
    #[serde(default)]
    pub finished_unix_ms: Option<f64>,
}

impl ReceivedJob {
    pub(crate) fn of(job: &Job) -> Self {
        let (status, disposition) = job.status();
        let r = &job.request;
        ReceivedJob {
            id: job.id.clone(),
            workflow_id: r.workflow_id.clone(),
            api: job.api.as_str().into(),
            questions: r.questions.clone(),
            priority: r.priority.clone(),
            status: status.into(),
            disposition: (disposition != "None").then(|| disposition.to_string()),
            created_at: job.created.format(&Rfc3339).unwrap_or_default(),
            received_unix_ms: job.unix_ms(job.arrived),
            worker_tag: r.worker_tag.clone(),
            credential_id: r.credential_id.clone(),
            ignored_fields: r.ignored_fields.clone(),
            started_unix_ms: job.started.map(|t| job.unix_ms(t)),
            finished_unix_ms: job.ended.map(|t| job.unix_ms(t)),
        }
    }
}

/// A .NET-style UTC timestamp with 100 ns ticks, as Alteryx writes them
/// (`2018-10-17T13:58:43.9759132Z`).
pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        ))
        .unwrap_or_default()
}

/// The priority a job reports: as requested, else v1's `Low` or v3's `Default`.
fn priority(job: &Job) -> String {
    job.request
        .priority
        .clone()
        .unwrap_or_else(|| match job.api {
            Api::V1 => "Low".into(),
            Api::V3 => "Default".into(),
        })
}

fn worker_tag(job: &Job) -> String {
    job.request.worker_tag.clone().unwrap_or_default()
}

/// The full job object: `GET v1/jobs/{id}/`, `GET v3/jobs/{id}` and the submit answers.
/// `api` is the version asked (a job queued through v1 may be read through v3).
pub(crate) fn job(job: &Job, api: Api, include_messages: bool) -> Value {
    let (status, disposition) = job.status();
    let mut out = match api {
        Api::V1 => json!({
            "id": job.id,
            "appId": job.request.workflow_id,
            "createDate": timestamp(job.created),
            "status": status,
            "disposition": disposition,
            "outputs": outputs(job, api),
            "priority": priority(job),
            "workerTag": worker_tag(job),
        }),
        Api::V3 => json!({
            "id": job.id,
            "appId": job.request.workflow_id,
            "createDateTime": timestamp(job.created),
            "status": status,
            "disposition": disposition,
            "outputs": outputs(job, api),
            "priority": priority(job),
            "workerTag": worker_tag(job),
            "runWithE2": false,
        }),
    };
    if include_messages {
        out["messages"] = messages(job);
    }
    out
}

/// An entry of a workflow's job list (`GET v1/workflows/{appId}/jobs/`, `GET v3/workflows/{id}/jobs`).
pub(crate) fn list_entry(job: &Job) -> Value {
    json!({
        "id": job.id,
        "createDate": timestamp(job.created),
        "status": job.status().0,
        "priority": priority(job),
        "workerTag": worker_tag(job),
        "runWithE2": false,
    })
}

/// The id of a finished job's only output.
pub(crate) fn output_id(job: &Job) -> String {
    format!("{:024x}", (0x6a0c_0000_u128 << 64) | u128::from(job.seq))
}

pub(crate) const OUTPUT_NAME: &str = "Output.csv";
pub(crate) const OUTPUT_FORMATS: [&str; 2] = ["Raw", "Csv"];

/// A finished job (any disposition but Cancelled) has one output: its question values as CSV.
pub(crate) fn has_output(job: &Job) -> bool {
    job.phase == Phase::Done && !job.cancelled
}

fn outputs(job: &Job, api: Api) -> Value {
    if !has_output(job) {
        return json!([]);
    }
    match api {
        Api::V1 => json!([{"id": output_id(job), "formats": OUTPUT_FORMATS, "name": OUTPUT_NAME}]),
        Api::V3 => json!([{
            "id": output_id(job), "availableFormats": OUTPUT_FORMATS, "fileName": OUTPUT_NAME,
        }]),
    }
}

/// The output's content: one `name,value` row per question value.
pub(crate) fn output_csv(job: &Job) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut csv = String::from("name,value\r\n");
    for (name, value) in &job.request.questions {
        csv.push_str(&format!("{},{}\r\n", quote(name), quote(value)));
    }
    csv
}

/// Alteryx-like engine messages (status 1 info, 2 warning, 3 error; tool -1 is the engine).
fn messages(job: &Job) -> Value {
    let seconds = job.request.run_time.as_secs_f64();
    match job.status().1 {
        "Success" => json!([
            {"status": 1, "text": format!("Finished running in {seconds:.1} seconds"), "toolId": -1}
        ]),
        "Warning" => json!([
            {"status": 2, "text": "Warning: Select (2): The field \"Region\" is missing", "toolId": 2},
            {"status": 1, "text": format!("Finished running in {seconds:.1} seconds with 1 warning"), "toolId": -1}
        ]),
        "Error" => json!([
            {"status": 3, "text": "Error: Input Data (1): File not found", "toolId": 1},
            {"status": 3, "text": format!("Finished running in {seconds:.1} seconds with 1 error"), "toolId": -1}
        ]),
        "Cancelled" => json!([
            {"status": 3, "text": "The job was cancelled", "toolId": -1}
        ]),
        _ => json!([]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_ticks() {
        let at = time::macros::datetime!(2018-10-17 15:58:43.975913289 +02:00);
        assert_eq!(timestamp(at), "2018-10-17T13:58:43.9759132Z");
    }
}
