//! The request pipeline every operation goes through: authenticate (sign, or attach the
//! bearer token), send with timeouts, read the whole answer, classify it, and retry what a
//! retry can fix.
//!
//! Retry policy: connection failures, timeouts, 429 and 5xx are retried with exponential
//! backoff and full jitter, at most `max_attempts` times and never past `max_elapsed`;
//! `Retry-After` is honoured within that budget. Other 4xx are final. Job submission is not
//! idempotent ([`Idempotence::Unsafe`]), so for it only failures where Alteryx cannot have
//! queued the job are retried (connection refused, 429, 503); a timeout or 500/502/504 on
//! submit is returned at once and the router records it as a retryable `ERROR` — a blind retry
//! here could queue the job twice, while the execution record makes the next attempt a
//! deliberate, visible one.
//!
//! A 401 with an OAuth2 token drops the token and retries once with a new one; the token
//! endpoint refusing the key and secret themselves is final.
//!
//! A call may carry a deadline (the invocation's): each attempt's timeout is the request
//! timeout or the time left, whichever is shorter, no retry starts that could not finish by
//! then, and a call whose deadline has passed is not sent at all ([`AlteryxError::Deadline`]).
//!
//! Nothing this module logs or returns holds a URL query (where OAuth1 signatures live), a
//! token or a secret: paths are relative, and reqwest's errors lose their URL.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::Instrument as _;

use super::auth::{self, TokenCache};
use super::{AlteryxError, AuthScheme, ClientOptions, ServerConfig};
use crate::error_chain;
use crate::secret_string::SecretString;

/// Whether an operation may be sent again after an ambiguous failure.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Idempotence {
    Safe,
    /// Retry only when the server cannot have acted on the request.
    Unsafe,
}

/// One API call, before authentication.
pub(super) struct Call<'a> {
    /// What the caller is doing, for errors and logs (`submit job`).
    pub operation: &'static str,
    pub method: Method,
    /// Relative to the base URL, without a query.
    pub path: String,
    /// The request's own query parameters, raw.
    pub query: Vec<(String, String)>,
    pub body: Option<&'a Value>,
    pub idempotence: Idempotence,
    /// No attempt runs past it (the invocation's deadline).
    pub deadline: Option<Instant>,
}

impl Call<'static> {
    /// A read: safe to send again.
    pub(super) fn get(operation: &'static str, path: String, query: Vec<(String, String)>) -> Self {
        Call {
            operation,
            method: Method::GET,
            path,
            query,
            body: None,
            idempotence: Idempotence::Safe,
            deadline: None,
        }
    }
}

/// Less than this left before a call's deadline: the request is not sent.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(200);

/// How one attempt failed.
enum Failure {
    /// Worth another attempt, after backoff (or after the server's `Retry-After`).
    Retry {
        error: AlteryxError,
        retry_after: Option<Duration>,
    },
    Final(AlteryxError),
    /// The token endpoint refused the key and secret themselves: a new token cannot help.
    CredentialsRefused(AlteryxError),
}

impl From<AlteryxError> for Failure {
    fn from(error: AlteryxError) -> Self {
        Failure::Final(error)
    }
}

/// Connections, credentials and tunables of one server; shared by a client's clones.
pub(super) struct Transport {
    config: ServerConfig,
    options: ClientOptions,
    http: reqwest::Client,
    tokens: TokenCache,
}

impl Transport {
    pub(super) fn new(config: ServerConfig, options: ClientOptions) -> Result<Self, AlteryxError> {
        let tls = crate::tls::alteryx_client_config().map_err(AlteryxError::Tls)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("alteryx-router/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlteryxError::HttpClient(e.into()))?;
        Ok(Self {
            config,
            options,
            http,
            tokens: TokenCache::default(),
        })
    }

    pub(super) fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Send `call` until it succeeds or the retry policy gives up; the answer's JSON.
    pub(super) async fn call(&self, call: Call<'_>) -> Result<Value, AlteryxError> {
        // `path` is relative and has no query: it never holds a signature or a token.
        let span = tracing::debug_span!(
            "alteryx_call",
            operation = call.operation,
            path = %call.path,
            attempt = tracing::field::Empty
        );
        self.call_with_retries(&call, &span)
            .instrument(span.clone())
            .await
    }

    async fn call_with_retries(
        &self,
        call: &Call<'_>,
        span: &tracing::Span,
    ) -> Result<Value, AlteryxError> {
        let started = Instant::now();
        let opts = &self.options;
        let mut attempt = 0u32;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            span.record("attempt", attempt);
            let timeout = match call.deadline {
                None => opts.request_timeout,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left < MIN_REQUEST_TIME {
                        return Err(AlteryxError::Deadline {
                            operation: call.operation,
                        });
                    }
                    left.min(opts.request_timeout)
                }
            };
            let result = self.attempt(call, timeout).await;
            let error = match result {
                Ok(value) => {
                    tracing::debug!(operation = call.operation, path = %call.path, attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64, "alteryx call ok");
                    return Ok(value);
                }
                Err(Failure::Final(AlteryxError::Unauthorized { status: 401, .. }))
                    if self.config.auth == AuthScheme::OAuth2 && !refreshed_token =>
                {
                    // The token may have expired early or been revoked: get a new one, once.
                    refreshed_token = true;
                    self.tokens.forget().await;
                    tracing::debug!(
                        operation = call.operation,
                        "401 with a cached token; refreshing it"
                    );
                    continue;
                }
                Err(Failure::Final(e) | Failure::CredentialsRefused(e)) => {
                    tracing::debug!(operation = call.operation, path = %call.path, attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64, status = e.status(),
                        error = %error_chain(&e), "alteryx call failed; not retryable");
                    return Err(e);
                }
                Err(Failure::Retry { error, retry_after }) => (error, retry_after),
            };
            let (error, retry_after) = error;
            let wait = retry_after.map_or_else(
                || full_jitter(backoff(opts, attempt)),
                |r| r.min(opts.max_elapsed),
            );
            let past_deadline = call
                .deadline
                .is_some_and(|d| Instant::now() + wait + MIN_REQUEST_TIME >= d);
            if attempt >= opts.max_attempts
                || started.elapsed() + wait >= opts.max_elapsed
                || past_deadline
            {
                tracing::warn!(operation = call.operation, path = %call.path, attempt,
                    error = %error_chain(&error), "alteryx call failed; no attempts left");
                return Err(error);
            }
            tracing::info!(operation = call.operation, path = %call.path, attempt,
                wait_ms = wait.as_millis() as u64, error = %error_chain(&error), "alteryx call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One authenticated request, given at most `timeout` for its answer.
    async fn attempt(&self, call: &Call<'_>, timeout: Duration) -> Result<Value, Failure> {
        let config = &self.config;
        let url = config
            .base_url
            .join(&call.path)
            .map_err(|source| AlteryxError::InvalidPath {
                operation: call.operation,
                path: call.path.clone(),
                source,
            })?;
        let mut request = match config.auth {
            AuthScheme::OAuth1 => {
                let signed = auth::sign_oauth1(
                    call.method.as_str(),
                    url.as_str(),
                    &call.query,
                    &config.key,
                    &config.secret,
                );
                self.http.request(call.method.clone(), signed)
            }
            AuthScheme::OAuth2 => {
                let token = self.bearer_token().await.map_err(|f| match f {
                    Failure::Final(e @ AlteryxError::Unauthorized { .. }) => {
                        Failure::CredentialsRefused(e)
                    }
                    other => other,
                })?;
                let mut url = url;
                if !call.query.is_empty() {
                    url.query_pairs_mut().extend_pairs(call.query.iter());
                }
                self.http
                    .request(call.method.clone(), url)
                    .bearer_auth(token.expose())
            }
        };
        request = request
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout);
        if let Some(body) = call.body {
            request = request.json(body);
        }
        self.send(call, request, timeout).await
    }

    /// A valid OAuth2 token, fetched (one request, classified like any other) when missing or
    /// near expiry.
    async fn bearer_token(&self) -> Result<SecretString, Failure> {
        self.tokens
            .token(|| async {
                let url = self
                    .config
                    .base_url
                    .join(auth::TOKEN_PATH)
                    .map_err(|source| AlteryxError::InvalidPath {
                        operation: auth::TOKEN_OPERATION,
                        path: auth::TOKEN_PATH.into(),
                        source,
                    })?;
                let call = Call {
                    operation: auth::TOKEN_OPERATION,
                    method: Method::POST,
                    path: auth::TOKEN_PATH.into(),
                    query: Vec::new(),
                    body: None,
                    idempotence: Idempotence::Safe,
                    deadline: None,
                };
                let form = auth::token_form(&self.config);
                self.send(
                    &call,
                    self.http.post(url).form(&form),
                    self.options.request_timeout,
                )
                .await
            })
            .await
    }

    /// Send, read the whole answer, and classify it.
    async fn send(
        &self,
        call: &Call<'_>,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(call, e, timeout))?;
        let status = response.status();
        tracing::debug!(
            operation = call.operation,
            path = %call.path,
            status = status.as_u16(),
            "alteryx answered"
        );
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(call, e, timeout))?;
        classify(call, status, &content_type, &body, retry_after)
    }

    /// A request that got no (complete) answer: whether it may have reached Alteryx decides
    /// whether it is sent again.
    fn transport_failure(&self, call: &Call<'_>, e: reqwest::Error, limit: Duration) -> Failure {
        let operation = call.operation;
        let (connect, timeout) = (e.is_connect(), e.is_timeout());
        if untrusted_certificate(&e) {
            // Sending again meets the same certificate: the error says what to do instead.
            return Failure::Final(AlteryxError::UntrustedCertificate {
                operation,
                source: e.into(),
            });
        }
        let error = if timeout {
            let after = if connect {
                self.options.connect_timeout.min(limit)
            } else {
                limit
            };
            AlteryxError::Timeout {
                operation,
                after,
                source: e.into(),
            }
        } else {
            AlteryxError::Transport {
                operation,
                source: e.into(),
            }
        };
        // No connection, so no request reached Alteryx: safe to send again, even a submit.
        // A timeout, reset or close after the request was sent: a submit may have queued the
        // job, so only reads are sent again.
        if connect || call.idempotence == Idempotence::Safe {
            Failure::Retry {
                error,
                retry_after: None,
            }
        } else {
            Failure::Final(error)
        }
    }
}

/// The backoff ceiling before attempt `attempt + 1`: doubling from `initial_backoff`, capped
/// at `max_backoff`.
fn backoff(opts: &ClientOptions, attempt: u32) -> Duration {
    opts.initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(opts.max_backoff)
}

/// "Full jitter": a uniformly random wait between zero and the ceiling, so clients that
/// failed together do not retry together.
fn full_jitter(ceiling: Duration) -> Duration {
    Duration::from_secs_f64(rand::rng().random_range(0.0..=ceiling.as_secs_f64()))
}

/// Whether a request failed because the server's certificate was refused (rustls's
/// `InvalidCertificate`), somewhere in the error's chain. `io::Error` hides its inner error
/// from `source()`, so it is opened with `get_ref`.
fn untrusted_certificate(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {
            return true;
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// Printable start of a body, for error messages (no control characters, bounded).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    clean.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Alteryx's own message from an error body: `message`, `error_description`, `error`, or text.
fn server_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for field in [
            "message",
            "Message",
            "error_description",
            "error",
            "detail",
            "title",
        ] {
            if let Some(m) = v
                .get(field)
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                return m.chars().take(500).collect();
            }
        }
        if let Some(s) = v.as_str() {
            return s.chars().take(500).collect();
        }
    }
    let text = snippet(body);
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

/// Whether an answer is JSON (by its content type, or by parsing when it has none).
fn looks_like_json(content_type: &str, body: &[u8]) -> bool {
    if content_type.to_ascii_lowercase().contains("json") {
        return true;
    }
    content_type.is_empty() && serde_json::from_slice::<Value>(body).is_ok()
}

/// An answer: its JSON when successful, else the error and whether to try again.
fn classify(
    call: &Call<'_>,
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Value, Failure> {
    let op = call.operation;
    let code = status.as_u16();
    if status.is_success() {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Failure::Final(AlteryxError::InvalidResponse {
                operation: op,
                status: code,
                detail: "empty body where JSON was expected".into(),
                source: None,
            }));
        }
        return serde_json::from_slice(body).map_err(|e| {
            let what = if content_type.contains("html") || body.trim_ascii_start().starts_with(b"<") {
                format!("expected JSON but got HTML ({content_type}); is ALTERYX_URL the API base (…/gallery/api/ or …/webapi/) and not a login page or proxy?")
            } else {
                "body is not JSON".to_string()
            };
            Failure::Final(AlteryxError::InvalidResponse {
                operation: op,
                status: code,
                detail: format!("{what}; starts with: {}", snippet(body)),
                source: Some(e),
            })
        });
    }
    if code == 404 && !looks_like_json(content_type, body) {
        // Alteryx answers an unknown job or workflow with JSON; an HTML 404 is a proxy or
        // load balancer in front of it (maintenance), which says nothing about the job.
        return Err(Failure::Final(AlteryxError::InvalidResponse {
            operation: op,
            status: code,
            detail: format!(
                "a 404 that is not Alteryx's JSON answer ({}), as a proxy or load balancer in front of Alteryx sends; starts with: {}",
                if content_type.is_empty() {
                    "no content type"
                } else {
                    content_type
                },
                snippet(body)
            ),
            source: None,
        }));
    }
    let message = server_message(body);
    if code == 401 || code == 403 {
        return Err(Failure::Final(AlteryxError::Unauthorized {
            status: code,
            operation: op,
            message,
        }));
    }
    let error = AlteryxError::Api {
        status: code,
        operation: op,
        message,
    };
    let retryable = match call.idempotence {
        Idempotence::Safe => code == 429 || status.is_server_error(),
        // Alteryx cannot have queued the job when it says "slow down" or "unavailable".
        Idempotence::Unsafe => code == 429 || code == 503,
    };
    if retryable {
        Err(Failure::Retry { error, retry_after })
    } else {
        Err(Failure::Final(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_are_extracted() {
        assert_eq!(
            server_message(br#"{"message":"Workflow not found"}"#),
            "Workflow not found"
        );
        assert_eq!(
            server_message(br#"{"error":"invalid_client"}"#),
            "invalid_client"
        );
        assert_eq!(server_message(b""), "(empty body)");
        assert_eq!(
            server_message(b"<html>\n<b>Bad</b></html>"),
            "<html> <b>Bad</b></html>"
        );
    }
}
