//! The Gallery API's data, as typed models tolerant of unknown fields.
//!
//! v1 and v3 spell some fields differently (`appId` / `workflowId`, `metaInfo.name` / `name`);
//! the models accept both so the rest of the program sees one shape.

use serde::{Deserialize, Serialize};

/// A workflow the credentials can run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Workflow {
    pub id: String,
    pub name: String,
    pub file_name: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
    pub upload_date: Option<String>,
}

fn text(v: &serde_json::Value, path: &[&str]) -> Option<String> {
    let v = path.iter().try_fold(v, |v, k| v.get(*k))?;
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Workflow {
    /// From a v1 subscription entry or a v3 workflow; `None` without an id.
    pub(crate) fn from_json(v: &serde_json::Value) -> Option<Workflow> {
        let id = text(v, &["id"])?;
        let file_name = text(v, &["fileName"]);
        let name = text(v, &["metaInfo", "name"])
            .or_else(|| text(v, &["name"]))
            .or_else(|| file_name.clone())
            .unwrap_or_else(|| id.clone());
        Some(Workflow {
            id,
            name,
            file_name,
            description: text(v, &["metaInfo", "description"])
                .or_else(|| text(v, &["description"])),
            version: text(v, &["version"]).or_else(|| text(v, &["publishedVersionNumber"])),
            upload_date: text(v, &["uploadDate"]).or_else(|| text(v, &["dateCreated"])),
        })
    }
}

/// A question (analytic app interface field) of a workflow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Question {
    pub name: String,
    /// v1 `type`; `questionType` in the published v3 schema compilations.
    #[serde(rename = "type", alias = "questionType", default)]
    pub question_type: String,
    #[serde(default)]
    pub description: Option<String>,
    /// v1 servers send this as a string (`"False"`), newer ones as a boolean.
    #[serde(default, deserialize_with = "loose_bool")]
    pub multiple: bool,
}

fn loose_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// A value for a question; Alteryx wants every value as a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionValue {
    pub name: String,
    pub value: String,
}

// Rules read it in any case and write it in lower case (serde); Alteryx gets it from
// `Display`, capitalised as v3's contract spells it (v1 requests lower-case it).
/// Alteryx job priority: low, medium, high or critical (any case is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

/// Text that is not a job priority.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("job priority {0:?} is not low, medium, high or critical")]
pub struct UnknownPriority(pub String);

impl Priority {
    /// The priority named `name`, case-insensitively (no surrounding blanks).
    pub fn from_name(name: &str) -> Result<Self, UnknownPriority> {
        [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Critical,
        ]
        .into_iter()
        .find(|p| p.to_string().eq_ignore_ascii_case(name))
        .ok_or_else(|| UnknownPriority(name.to_string()))
    }
}

/// Command-line input: blanks around the name are ignored.
impl std::str::FromStr for Priority {
    type Err = UnknownPriority;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::from_name(s.trim())
    }
}

/// Rules (YAML, JSON, DynamoDB): any case, as before the field was typed; anything else is
/// an error at parse time. The check runs inside the deserializer's visit, so the format's
/// error carries the position (and, in YAML, the field's path).
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Priority;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a job priority: low, medium, high or critical")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Priority, E> {
                Priority::from_name(name).map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::Low => "Low",
            Priority::Medium => "Medium",
            Priority::High => "High",
            Priority::Critical => "Critical",
        })
    }
}

/// What to queue.
#[derive(Clone, Debug, Default)]
pub struct JobRequest {
    pub questions: Vec<QuestionValue>,
    pub priority: Option<Priority>,
    /// Run only on workers with this tag (v3 `workerTag`; v1 cannot carry it).
    pub worker_tag: Option<String>,
    /// Run as this stored credential (v3 `credentialId`; v1 cannot carry it).
    pub credential_id: Option<String>,
    /// The rule asking, named in errors about the request itself.
    pub rule_id: Option<String>,
}

/// A job as Alteryx reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    #[serde(default, alias = "appId")]
    pub workflow_id: Option<String>,
    /// v1 `createDate`; v3 `createDateTime` (Alteryx help, "Job Endpoints", GET v3/jobs/{jobId}).
    #[serde(default, alias = "createDateTime")]
    pub create_date: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub disposition: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub messages: Vec<JobMessage>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub outputs: Vec<JobOutput>,
    #[serde(default, deserialize_with = "priority_text")]
    pub priority: Option<String>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Priority comes as text in v1 and as a number or text elsewhere.
fn priority_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl Job {
    /// The job reached an end state.
    pub fn is_finished(&self) -> bool {
        self.status.eq_ignore_ascii_case("completed")
            || self
                .disposition
                .as_deref()
                .is_some_and(|d| !d.is_empty() && !d.eq_ignore_ascii_case("none"))
    }

    /// When Alteryx created the job (`createDate`), read as UTC when it carries no offset;
    /// `None` when absent or unreadable.
    pub fn created_at(&self) -> Option<time::OffsetDateTime> {
        parse_alteryx_time(self.create_date.as_deref()?)
    }

    /// Finished without an error.
    pub fn succeeded(&self) -> bool {
        self.is_finished()
            && self.disposition.as_deref().is_some_and(|d| {
                d.eq_ignore_ascii_case("success") || d.eq_ignore_ascii_case("warning")
            })
    }
}

/// An Alteryx timestamp: RFC 3339 with up to 7 fractional digits (`2026-01-05T10:00:00.1234567Z`),
/// or the same without an offset, which Alteryx writes in UTC.
pub fn parse_alteryx_time(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
        .ok()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobMessage {
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub tool_id: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobOutput {
    pub id: String,
    #[serde(default, alias = "fileName")]
    pub name: Option<String>,
    #[serde(default, alias = "availableFormats")]
    pub formats: Vec<String>,
}

/// Paging and sorting for a workflow's jobs.
#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    /// A job field as Alteryx names it (`createDate`, ...); passed on as given.
    pub sort_field: Option<String>,
    pub direction: Option<SortDirection>,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

/// The order of a job listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

impl SortDirection {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SortDirection::Ascending => "asc",
            SortDirection::Descending => "desc",
        }
    }
}

impl JobQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.direction {
            out.push(("direction".to_string(), v.as_str().to_string()));
        }
        if let Some(v) = self.limit {
            out.push(("limit".to_string(), v.to_string()));
        }
        if let Some(v) = self.offset {
            out.push(("offset".to_string(), v.to_string()));
        }
        if let Some(v) = &self.sort_field {
            out.push(("sortField".to_string(), v.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_and_v3_jobs_read_alike() {
        let v1: Job = serde_json::from_value(json!({
            "id": "5f3c", "appId": "abc", "createDate": "2021-01-01T00:00:00Z", "status": "Completed",
            "disposition": "Error", "outputs": null, "priority": 0, "extra": {"ignored": true},
            "messages": [{"status": 3, "text": "Error: Input Data (1): File not found", "toolId": 1}]
        }))
        .unwrap();
        assert_eq!(v1.workflow_id.as_deref(), Some("abc"));
        assert!(v1.is_finished() && !v1.succeeded());
        assert_eq!(v1.messages[0].tool_id, Some(1));
        let v3: Job = serde_json::from_value(
            json!({"id": "j", "workflowId": "w", "status": "Running", "disposition": "None"}),
        )
        .unwrap();
        assert_eq!(v3.workflow_id.as_deref(), Some("w"));
        assert!(!v3.is_finished());
        // The sample answer of GET v3/jobs/{jobId} in Alteryx's help ("Job Endpoints").
        let documented: Job = serde_json::from_value(json!({
            "id": "66ebd18d3d6200007e000d8c", "appId": "a1", "createDateTime": "2024-09-19T10:02:54.589Z",
            "status": "Completed", "disposition": "Success",
            "outputs": [{"id": "o1", "availableFormats": ["Raw"], "fileName": "out.csv"}],
            "messages": [{"status": 0, "text": "done", "toolId": 0}],
            "priority": "Default", "workerTag": "", "runWithE2": true
        }))
        .unwrap();
        assert_eq!(
            documented.create_date.as_deref(),
            Some("2024-09-19T10:02:54.589Z")
        );
        assert_eq!(documented.workflow_id.as_deref(), Some("a1"));
        assert_eq!(documented.outputs[0].name.as_deref(), Some("out.csv"));
        assert_eq!(documented.outputs[0].formats, vec!["Raw".to_string()]);
        assert_eq!(documented.priority.as_deref(), Some("Default"));
        assert!(documented.succeeded());
    }

    #[test]
    fn alteryx_times_read_with_ticks_and_without_an_offset() {
        let t = parse_alteryx_time("2018-10-17T13:58:43.9759132Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_539_784_723);
        assert_eq!(t.nanosecond(), 975_913_200);
        assert_eq!(
            parse_alteryx_time("2018-10-17T13:58:43.9759132"),
            Some(t),
            "no offset: UTC"
        );
        assert_eq!(
            parse_alteryx_time("2018-10-17T15:58:43.9759132+02:00"),
            Some(t)
        );
        assert!(parse_alteryx_time("yesterday").is_none());
        let job: Job = serde_json::from_value(
            json!({"id": "j", "createDate": "2018-10-17T13:58:43.9759132Z"}),
        )
        .unwrap();
        assert_eq!(job.created_at(), Some(t));
    }

    #[test]
    fn workflows_take_names_from_meta_info_or_name() {
        let v1 = Workflow::from_json(&json!({"id": "1", "fileName": "a.yxmd", "metaInfo": {"name": "Sales", "description": "d"}})).unwrap();
        assert_eq!(
            (v1.name.as_str(), v1.description.as_deref()),
            ("Sales", Some("d"))
        );
        let v3 =
            Workflow::from_json(&json!({"id": "2", "name": "Inv", "publishedVersionNumber": 3}))
                .unwrap();
        assert_eq!(
            (v3.name.as_str(), v3.version.as_deref()),
            ("Inv", Some("3"))
        );
        assert!(Workflow::from_json(&json!({"name": "no id"})).is_none());
    }

    #[test]
    fn v1_questions_with_string_booleans_parse() {
        // As captured from a Gallery by the PyRyx client's README.
        let q: Vec<Question> = serde_json::from_value(json!([
            {"description": "Select Region", "items": [{"key": "East", "value": "East"}],
             "multiple": "False", "name": "Select Region", "type": "QuestionListBox"},
            {"name": "Many", "type": "QuestionListBox", "multiple": true},
            {"name": "V3", "questionType": "QuestionTextBox", "multiple": false}
        ]))
        .unwrap();
        assert_eq!(q[2].question_type, "QuestionTextBox");
        assert_eq!(
            (q[0].name.as_str(), q[0].multiple, q[1].multiple),
            ("Select Region", false, true)
        );
        assert_eq!(q[0].question_type, "QuestionListBox");
    }

    #[test]
    fn job_queries_become_the_api_parameters() {
        let query = JobQuery {
            sort_field: Some("createDate".into()),
            direction: Some(SortDirection::Descending),
            offset: None,
            limit: Some(5),
        };
        assert_eq!(
            query.pairs(),
            [
                ("direction", "desc"),
                ("limit", "5"),
                ("sortField", "createDate")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(JobQuery::default().pairs().is_empty());
    }

    #[test]
    fn priorities_parse_case_insensitively() {
        assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
        assert_eq!(" low ".parse::<Priority>(), Ok(Priority::Low));
        assert_eq!(
            "urgent".parse::<Priority>().unwrap_err().to_string(),
            "job priority \"urgent\" is not low, medium, high or critical"
        );
        assert_eq!(Priority::Low.to_string(), "Low");
        for text in ["\"critical\"", "\"Critical\"", "\"CRITICAL\""] {
            assert_eq!(
                serde_json::from_str::<Priority>(text).unwrap(),
                Priority::Critical
            );
        }
        assert_eq!(serde_json::to_value(Priority::Medium).unwrap(), "medium");
        let e = serde_json::from_str::<Priority>("\"urgent\"").unwrap_err();
        assert!(e.to_string().contains("\"urgent\" is not low"), "{e}");
    }
}
