//! [`AlteryxClient`]: the Gallery API operations the router, the tracker and the CLI use —
//! list workflows, a workflow's questions, submit a job, get a job, list a workflow's jobs —
//! each in its v1 and v3 shape. Which routes and bodies each API version wants lives here;
//! how a request is authenticated, sent and retried lives in [`super::transport`].

use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use serde_json::Value;

use super::auth::RFC3986;
use super::models::{Job, JobQuery, JobRequest, Question, SortDirection, Workflow};
use super::transport::{Call, Idempotence, Transport};
use super::{AlteryxError, ApiVersion, ClientOptions, ServerConfig};

/// An Alteryx Server client. Cheap to clone; clones share connections and the OAuth2 token.
#[derive(Clone)]
pub struct AlteryxClient {
    transport: Arc<Transport>,
    /// No request of this client runs past it (see [`AlteryxClient::until`]).
    deadline: Option<Instant>,
}

/// A workflow's jobs created since a time, newest first (see
/// [`AlteryxClient::jobs_created_since`]).
#[derive(Clone, Debug)]
pub struct JobsSince {
    pub jobs: Vec<Job>,
    /// False when the listing was cut at the limit before it reached older jobs (or the
    /// server did not sort, so older jobs could not be told apart): jobs may be missing.
    pub complete: bool,
    /// List requests made (pages read).
    pub pages: usize,
}

impl std::fmt::Debug for AlteryxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.transport.config();
        f.debug_struct("AlteryxClient")
            .field("base_url", &config.base_url.as_str())
            .field("auth", &config.auth)
            .field("api", &config.api)
            .finish()
    }
}

impl AlteryxClient {
    pub fn new(config: ServerConfig, options: ClientOptions) -> Result<Self, AlteryxError> {
        Ok(Self {
            transport: Arc::new(Transport::new(config, options)?),
            deadline: None,
        })
    }

    /// The same client whose requests end by `deadline`: each request's timeout is bounded by
    /// the time left, no retry starts that could not end by then, and nothing is sent after.
    pub fn until(&self, deadline: Instant) -> Self {
        Self {
            transport: Arc::clone(&self.transport),
            deadline: Some(deadline),
        }
    }

    async fn call(&self, mut call: Call<'_>) -> Result<Value, AlteryxError> {
        call.deadline = match (call.deadline, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.transport.call(call).await
    }

    pub fn config(&self) -> &ServerConfig {
        self.transport.config()
    }

    fn v3(&self) -> bool {
        self.config().api == ApiVersion::V3
    }

    /// Workflows the credentials can run (v1: the subscription's studio; v3: all, admin).
    pub async fn list_workflows(&self) -> Result<Vec<Workflow>, AlteryxError> {
        let path = if self.v3() {
            "v3/workflows"
        } else {
            "v1/workflows/subscription/"
        };
        let value = self
            .call(Call::get("list workflows", path.into(), Vec::new()))
            .await?;
        let items = value
            .as_array()
            .ok_or_else(|| AlteryxError::InvalidResponse {
                operation: "list workflows",
                status: 200,
                detail: "expected a JSON list of workflows".into(),
                source: None,
            })?;
        Ok(items.iter().filter_map(Workflow::from_json).collect())
    }

    /// The questions (app interface fields) of a workflow.
    ///
    /// v3 asks `v3/workflows/{id}/questions`; Alteryx's help pages do not list that route
    /// (only a third-party OpenAPI compilation does), so on a 404 the v1 route, which every
    /// `/webapi/` server serves with the same bearer token, is asked too. A workflow that
    /// really does not exist is a 404 on both, and that second answer is returned.
    pub async fn questions(&self, workflow_id: &str) -> Result<Vec<Question>, AlteryxError> {
        let id = segment(workflow_id);
        let v1 = || {
            Call::get(
                "get questions",
                format!("v1/workflows/{id}/questions/"),
                Vec::new(),
            )
        };
        let value = if self.v3() {
            let v3 = Call::get(
                "get questions",
                format!("v3/workflows/{id}/questions"),
                Vec::new(),
            );
            match self.call(v3).await {
                Err(AlteryxError::Api { status: 404, .. }) => {
                    tracing::debug!(
                        workflow_id,
                        "v3 questions route answered 404; asking the v1 route"
                    );
                    self.call(v1()).await?
                }
                other => other?,
            }
        } else {
            self.call(v1()).await?
        };
        parse("get questions", value)
    }

    /// Queue a job with question values. Not idempotent: see the transport's retry policy.
    pub async fn submit_job(
        &self,
        workflow_id: &str,
        request: &JobRequest,
    ) -> Result<Job, AlteryxError> {
        let id = segment(workflow_id);
        if !self.v3() {
            refuse_v3_only_fields(request)?;
        }
        let (path, priority) = if self.v3() {
            (
                format!("v3/workflows/{id}/jobs"),
                request.priority.map(|p| p.to_string()),
            )
        } else {
            (
                format!("v1/workflows/{id}/jobs/"),
                request.priority.map(|p| p.to_string().to_ascii_lowercase()),
            )
        };
        let mut body = serde_json::json!({ "questions": request.questions });
        if let Some(p) = priority {
            body["priority"] = Value::String(p);
        }
        if let Some(tag) = &request.worker_tag {
            body["workerTag"] = Value::String(tag.clone());
        }
        if let Some(credential) = &request.credential_id {
            body["credentialId"] = Value::String(credential.clone());
        }
        let value = self
            .call(Call {
                operation: "submit job",
                method: Method::POST,
                path,
                query: Vec::new(),
                body: Some(&body),
                idempotence: Idempotence::Unsafe,
                deadline: None,
            })
            .await?;
        parse("submit job", value)
    }

    /// One job: status, disposition, messages, outputs.
    pub async fn get_job(&self, job_id: &str) -> Result<Job, AlteryxError> {
        let id = segment(job_id);
        let path = if self.v3() {
            format!("v3/jobs/{id}")
        } else {
            format!("v1/jobs/{id}/")
        };
        let value = self.call(Call::get("get job", path, Vec::new())).await?;
        parse("get job", value)
    }

    /// A workflow's jobs.
    pub async fn list_jobs(
        &self,
        workflow_id: &str,
        query: &JobQuery,
    ) -> Result<Vec<Job>, AlteryxError> {
        let id = segment(workflow_id);
        let path = if self.v3() {
            format!("v3/workflows/{id}/jobs")
        } else {
            format!("v1/workflows/{id}/jobs/")
        };
        let value = self
            .call(Call::get("list jobs", path, query.pairs()))
            .await?;
        parse("list jobs", value)
    }
}

impl AlteryxClient {
    /// The jobs of a workflow created at or after `since` (Alteryx's clock), newest first,
    /// read page by page (`sortField=createDate&direction=desc`, `offset`/`limit`) until a
    /// page reaches older jobs, at most `max` jobs. A job whose creation time cannot be read
    /// is kept (it cannot be ruled out). If a page is not in descending order (a server that
    /// ignores the sort), every page is read up to `max`.
    pub async fn jobs_created_since(
        &self,
        workflow_id: &str,
        since: time::OffsetDateTime,
        max: usize,
    ) -> Result<JobsSince, AlteryxError> {
        const PAGE: u32 = 100;
        let mut jobs = Vec::new();
        let mut offset = 0u32;
        let mut pages = 0;
        loop {
            pages += 1;
            let page = self
                .list_jobs(
                    workflow_id,
                    &JobQuery {
                        sort_field: Some("createDate".into()),
                        direction: Some(SortDirection::Descending),
                        offset: Some(offset),
                        limit: Some(PAGE),
                    },
                )
                .await?;
            let times: Vec<Option<time::OffsetDateTime>> =
                page.iter().map(Job::created_at).collect();
            let sorted = times.windows(2).all(|w| {
                matches!((w[0], w[1]), (Some(a), Some(b)) if a >= b)
                    || w[0].is_none()
                    || w[1].is_none()
            });
            let reached_older = times.iter().flatten().any(|t| *t < since);
            let full = page.len() as u32 >= PAGE;
            for (job, created) in page.into_iter().zip(times) {
                if created.is_none_or(|t| t >= since) {
                    jobs.push(job);
                }
            }
            if jobs.len() > max {
                jobs.truncate(max);
                return Ok(JobsSince {
                    jobs,
                    complete: false,
                    pages,
                });
            }
            if !full || (sorted && reached_older) {
                return Ok(JobsSince {
                    jobs,
                    complete: true,
                    pages,
                });
            }
            offset += PAGE;
        }
    }
}

/// v1's job request is `{questions, priority}`: a worker tag or credential id would be
/// dropped by the server (or refused), so the job would run elsewhere or as someone else.
fn refuse_v3_only_fields(request: &JobRequest) -> Result<(), AlteryxError> {
    let fields: Vec<&str> = [
        (request.worker_tag.is_some(), "`worker_tag` (workerTag)"),
        (
            request.credential_id.is_some(),
            "`credential_id` (credentialId)",
        ),
    ]
    .into_iter()
    .filter_map(|(asked, field)| asked.then_some(field))
    .collect();
    if fields.is_empty() {
        return Ok(());
    }
    Err(AlteryxError::Unsupported {
        operation: "submit job",
        asker: request
            .rule_id
            .as_ref()
            .map_or_else(|| "the request ".to_string(), |id| format!("rule `{id}` ")),
        fields: fields.join(" and "),
        api: "v1",
    })
}

/// An id as one path segment (ids come from rules and users: `/` or `?` must not escape it).
fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, RFC3986).to_string()
}

fn parse<T: serde::de::DeserializeOwned>(
    operation: &'static str,
    value: Value,
) -> Result<T, AlteryxError> {
    serde_json::from_value(value).map_err(|e| AlteryxError::InvalidResponse {
        operation,
        status: 200,
        detail: "the JSON does not have the expected shape".into(),
        source: Some(e),
    })
}
