//! Fault injection. Faults wait in two lines: one for every API request (token requests and
//! unknown paths included), answered by the [`gate`] middleware before authentication, and one
//! for job submissions only (`POST .../jobs`), applied by the submit handler after
//! authentication, so token requests and polls do not use them up. The fault at the front of a
//! line applies to the next requests until its count is spent.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::state::Shared;

/// A fault applied to the next API requests (or, for the `*Submit*` kinds, job submissions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a JSON message.
    Status { status: u16, count: u32 },
    /// 503 Service Unavailable with a `Retry-After` of this many seconds (a server in
    /// maintenance, or one shedding load).
    Unavailable { retry_after_secs: u64, count: u32 },
    /// Wait, then answer 503.
    Hang { duration: Duration, count: u32 },
    /// 200 with an HTML login page, like a misconfigured proxy.
    Html { count: u32 },
    /// 200 with an empty body.
    Empty { count: u32 },
    /// 404 with an HTML page, like a proxy in front of a server down for maintenance.
    Html404 { count: u32 },
    /// Job submissions: queue the job at once, answer only after `delay`.
    SlowSubmit { delay: Duration, count: u32 },
    /// Job submissions: queue the job, then drop the connection without an answer.
    LoseSubmitAnswer { count: u32 },
    /// Job submissions: queue nothing and drop the connection without an answer.
    SwallowSubmit { count: u32 },
}

/// The body `POST /_emulator/faults` accepts, for error messages.
pub(crate) const FAULT_SPECS: &str = "expected {\"status\":N,\"count\":N} | {\"unavailable\":N,\"retry_after\":S} | {\"hang_ms\":N,\"count\":N} | {\"html\":N} \
     | {\"empty\":N} | {\"html_404\":N} | {\"submit_delay_ms\":N,\"count\":N} | {\"submit_lose_answer\":N} \
     | {\"submit_swallow\":N}";

impl Fault {
    /// How many requests it applies to.
    pub fn count(&self) -> u32 {
        match self {
            Fault::Status { count, .. }
            | Fault::Unavailable { count, .. }
            | Fault::Hang { count, .. }
            | Fault::Html { count }
            | Fault::Empty { count }
            | Fault::Html404 { count }
            | Fault::SlowSubmit { count, .. }
            | Fault::LoseSubmitAnswer { count }
            | Fault::SwallowSubmit { count } => *count,
        }
    }

    /// Applies to job submissions only.
    pub fn targets_submissions(&self) -> bool {
        matches!(
            self,
            Fault::SlowSubmit { .. } | Fault::LoseSubmitAnswer { .. } | Fault::SwallowSubmit { .. }
        )
    }

    /// Read a fault from the admin API's JSON.
    pub(crate) fn from_json(spec: &Value) -> Result<Fault, String> {
        let number = |name: &str| spec.get(name).and_then(Value::as_u64);
        let count = |default: u64| {
            let n = number("count").unwrap_or(default);
            u32::try_from(n).map_err(|_| format!("count {n} is too large"))
        };
        let single = |n: u64| u32::try_from(n).map_err(|_| format!("count {n} is too large"));
        if let Some(status) = number("status") {
            let status = u16::try_from(status)
                .ok()
                .filter(|s| (100..=999).contains(s))
                .ok_or_else(|| format!("status {status} is not an HTTP status code"))?;
            return Ok(Fault::Status {
                status,
                count: count(1)?,
            });
        }
        if let Some(n) = number("unavailable") {
            return Ok(Fault::Unavailable {
                retry_after_secs: number("retry_after").unwrap_or(60),
                count: single(n)?,
            });
        }
        if let Some(ms) = number("hang_ms") {
            return Ok(Fault::Hang {
                duration: Duration::from_millis(ms),
                count: count(1)?,
            });
        }
        if let Some(ms) = number("submit_delay_ms") {
            return Ok(Fault::SlowSubmit {
                delay: Duration::from_millis(ms),
                count: count(1)?,
            });
        }
        type Make = fn(u32) -> Fault;
        let counted: [(&str, Make); 5] = [
            ("html", |count| Fault::Html { count }),
            ("empty", |count| Fault::Empty { count }),
            ("html_404", |count| Fault::Html404 { count }),
            ("submit_lose_answer", |count| Fault::LoseSubmitAnswer {
                count,
            }),
            ("submit_swallow", |count| Fault::SwallowSubmit { count }),
        ];
        for (name, make) in counted {
            if let Some(n) = number(name) {
                return Ok(make(single(n)?));
            }
        }
        Err(FAULT_SPECS.to_string())
    }
}

/// The two lines of pending faults.
#[derive(Default)]
pub(crate) struct Faults {
    api: VecDeque<(Fault, u32)>,
    submissions: VecDeque<(Fault, u32)>,
}

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault) {
        let count = fault.count();
        if count == 0 {
            return;
        }
        if fault.targets_submissions() {
            self.submissions.push_back((fault, count));
        } else {
            self.api.push_back((fault, count));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.api.clear();
        self.submissions.clear();
    }

    /// The fault for the next API request, if any (using it up).
    pub(crate) fn next_api(&mut self) -> Option<Fault> {
        take(&mut self.api)
    }

    /// The fault for the next job submission, if any (using it up).
    pub(crate) fn next_submission(&mut self) -> Option<Fault> {
        take(&mut self.submissions)
    }
}

fn take(line: &mut VecDeque<(Fault, u32)>) -> Option<Fault> {
    let (fault, left) = line.front_mut()?;
    let fault = fault.clone();
    *left -= 1;
    if *left == 0 {
        line.pop_front();
    }
    Some(fault)
}

/// Middleware in front of every API request: counts it, then answers an injected fault instead
/// of the server if one is pending.
pub(crate) async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let fault = {
        let mut s = state.lock();
        s.stats.requests += 1;
        s.faults.next_api()
    };
    match fault {
        None => next.run(request).await,
        Some(Fault::Hang { duration, .. }) => {
            tokio::time::sleep(duration).await;
            crate::message(StatusCode::SERVICE_UNAVAILABLE, "Injected fault: hung")
        }
        Some(fault) => answer(&fault),
    }
}

/// The answer of a fault that answers at once.
fn answer(fault: &Fault) -> Response {
    match fault {
        Fault::Status { status, .. } => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            crate::message(code, format!("Injected fault: {status}"))
        }
        Fault::Unavailable {
            retry_after_secs, ..
        } => {
            let mut response = crate::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Injected fault: unavailable",
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Fault::Html { .. } => html(
            StatusCode::OK,
            "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Alteryx Server login</body></html>",
        ),
        Fault::Html404 { .. } => html(
            StatusCode::NOT_FOUND,
            "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>\
             <p>The site is down for maintenance.</p></body></html>",
        ),
        Fault::Empty { .. } => (StatusCode::OK, Body::empty()).into_response(),
        // Not API faults (never in that line); answer as a server error if one gets here.
        Fault::Hang { .. }
        | Fault::SlowSubmit { .. }
        | Fault::LoseSubmitAnswer { .. }
        | Fault::SwallowSubmit { .. } => {
            crate::message(StatusCode::INTERNAL_SERVER_ERROR, "Injected fault")
        }
    }
}

fn html(status: StatusCode, page: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_admin_spec_reads_into_its_fault() {
        let cases = [
            (
                json!({"status": 503, "count": 2}),
                Fault::Status {
                    status: 503,
                    count: 2,
                },
            ),
            (
                json!({"status": 500}),
                Fault::Status {
                    status: 500,
                    count: 1,
                },
            ),
            (
                json!({"hang_ms": 50, "count": 3}),
                Fault::Hang {
                    duration: Duration::from_millis(50),
                    count: 3,
                },
            ),
            (
                json!({"unavailable": 3, "retry_after": 120}),
                Fault::Unavailable {
                    retry_after_secs: 120,
                    count: 3,
                },
            ),
            (json!({"html": 2}), Fault::Html { count: 2 }),
            (json!({"empty": 1}), Fault::Empty { count: 1 }),
            (json!({"html_404": 4}), Fault::Html404 { count: 4 }),
            (
                json!({"submit_delay_ms": 900, "count": 2}),
                Fault::SlowSubmit {
                    delay: Duration::from_millis(900),
                    count: 2,
                },
            ),
            (
                json!({"submit_lose_answer": 1}),
                Fault::LoseSubmitAnswer { count: 1 },
            ),
            (
                json!({"submit_swallow": 5}),
                Fault::SwallowSubmit { count: 5 },
            ),
        ];
        for (spec, fault) in cases {
            assert_eq!(Fault::from_json(&spec), Ok(fault), "{spec}");
        }
        for bad in [
            json!({}),
            json!({"status": 70000}),
            json!({"html": 1u64 << 40}),
        ] {
            assert!(Fault::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_separate_and_spent_in_order() {
        let mut f = Faults::default();
        f.push(Fault::Status {
            status: 503,
            count: 2,
        });
        f.push(Fault::SwallowSubmit { count: 1 });
        f.push(Fault::Html { count: 0 });
        f.push(Fault::Empty { count: 1 });
        assert_eq!(f.next_submission(), Some(Fault::SwallowSubmit { count: 1 }));
        assert_eq!(f.next_submission(), None);
        assert!(matches!(f.next_api(), Some(Fault::Status { .. })));
        assert!(matches!(f.next_api(), Some(Fault::Status { .. })));
        assert_eq!(
            f.next_api(),
            Some(Fault::Empty { count: 1 }),
            "a zero count queues nothing"
        );
        assert_eq!(f.next_api(), None);
    }
}
