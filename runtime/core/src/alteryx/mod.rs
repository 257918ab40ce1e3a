//! Alteryx Server Gallery API client: v1 with OAuth1 (HMAC-SHA1, signature in the query
//! string, Server up to 2021.x at `/gallery/api/`) and v1/v3 with OAuth2 client credentials
//! (Server 2021.4+ at `/webapi/`). See `docs/alteryx-api.md` for what we confirmed.
//!
//! This module owns what callers configure and what they get back when it fails:
//! [`ServerConfig`] (where and how to talk, chosen from the URL or overridden),
//! [`ClientOptions`] (timeouts and retry bounds) and [`AlteryxError`]. The work is split by
//! concern:
//!
//! - `operations`: [`AlteryxClient`], the API operations and their v1/v3 routes and bodies;
//! - `transport`: one request pipeline — send with timeouts, classify the answer, retry with
//!   backoff (connection errors, timeouts, 429 and 5xx; never other 4xx; submit only where
//!   Alteryx cannot have queued the job);
//! - `auth`: OAuth1 request signing and the OAuth2 token cache;
//! - `models`: the API's data as typed models.
//!
//! The pool that keeps one client per secret lives with the credentials, in
//! [`crate::secrets::ClientPool`].

mod auth;
mod models;
mod operations;
mod transport;

pub use models::{
    Job, JobMessage, JobOutput, JobQuery, JobRequest, Priority, Question, QuestionValue,
    SortDirection, UnknownPriority, Workflow, parse_alteryx_time,
};
pub use operations::{AlteryxClient, JobsSince};

use std::time::Duration;

use crate::secret_string::SecretString;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// OAuth 1.0a, HMAC-SHA1, consumer key + secret only, parameters in the query string.
    OAuth1,
    /// OAuth2 client credentials; `Authorization: Bearer` on every call.
    OAuth2,
}

/// Which generation of endpoints the operations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V3,
}

/// Where the server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Base address, always ending with `/` (e.g. `https://host/gallery/api/`).
    pub base_url: url::Url,
    pub key: String,
    pub secret: SecretString,
    pub auth: AuthScheme,
    pub api: ApiVersion,
}

impl ServerConfig {
    /// Build a configuration, choosing auth and API from the URL unless overridden:
    /// a path with `/gallery/api` → OAuth1 + v1; `/webapi` → OAuth2 + v3.
    /// `api_version`: `v1` | `v3`; `auth`: `oauth1` | `oauth2` (case-insensitive).
    pub fn from_parts(
        url: &str,
        key: &str,
        secret: SecretString,
        api_version: Option<&str>,
        auth: Option<&str>,
    ) -> Result<Self, AlteryxError> {
        let mut text = url.trim().to_string();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base_url = url::Url::parse(&text).map_err(|source| AlteryxError::InvalidUrl {
            url: strip_query(url).to_string(),
            source,
        })?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(AlteryxError::Config(format!(
                "ALTERYX_URL {:?} must be http(s)",
                strip_query(url)
            )));
        }
        if base_url.query().is_some() {
            return Err(AlteryxError::Config(
                "ALTERYX_URL must not contain a query string".into(),
            ));
        }
        let api_override = parse_override(
            "ALTERYX_API_VERSION",
            api_version,
            &[("v1", ApiVersion::V1), ("v3", ApiVersion::V3)],
        )?;
        let auth_override = parse_override(
            "ALTERYX_AUTH",
            auth,
            &[
                ("oauth1", AuthScheme::OAuth1),
                ("oauth2", AuthScheme::OAuth2),
            ],
        )?;
        let path = base_url.path().to_ascii_lowercase();
        let from_url = if path.contains("/webapi/") {
            Some((AuthScheme::OAuth2, ApiVersion::V3))
        } else if path.contains("/gallery/api/") {
            Some((AuthScheme::OAuth1, ApiVersion::V1))
        } else if api_override.is_none() && auth_override.is_none() {
            // A Gallery served from its own host or path (e.g. https://gallery.acme.com/api/)
            // is the pre-2021.4 kind; anything else cannot be told apart safely.
            let gallery_like = path.contains("gallery")
                || base_url
                    .host_str()
                    .is_some_and(|h| h.to_ascii_lowercase().contains("gallery"));
            if !gallery_like {
                return Err(AlteryxError::Config(format!(
                    "cannot tell the API from ALTERYX_URL {:?}: expected a base ending in /gallery/api/ (OAuth1, Server ≤ 2021.x) or /webapi/ (OAuth2, Server 2021.4+); set ALTERYX_API_VERSION and ALTERYX_AUTH to override",
                    base_url.as_str()
                )));
            }
            tracing::debug!(
                url = base_url.as_str(),
                "gallery-like ALTERYX_URL; assuming OAuth1 + v1"
            );
            Some((AuthScheme::OAuth1, ApiVersion::V1))
        } else {
            None
        };
        // An override of one half decides the other where the URL did not: v3 exists only
        // with OAuth2, and OAuth1 only serves v1.
        let (scheme, api) = match (from_url, api_override, auth_override) {
            (_, Some(api), Some(scheme)) => (scheme, api),
            (Some(both), None, None) => both,
            (Some((scheme, _)), Some(api), None) => match api {
                ApiVersion::V3 => (AuthScheme::OAuth2, api),
                ApiVersion::V1 => (scheme, api),
            },
            (_, None, Some(scheme)) => match scheme {
                AuthScheme::OAuth1 => (scheme, ApiVersion::V1),
                AuthScheme::OAuth2 => (scheme, from_url.map_or(ApiVersion::V3, |(_, api)| api)),
            },
            (None, Some(api), None) => match api {
                ApiVersion::V3 => (AuthScheme::OAuth2, api),
                ApiVersion::V1 => (AuthScheme::OAuth1, api),
            },
            (None, None, None) => {
                return Err(AlteryxError::Config(format!(
                    "cannot tell the API from ALTERYX_URL {:?}",
                    base_url.as_str()
                )));
            }
        };
        if scheme == AuthScheme::OAuth1 && api == ApiVersion::V3 {
            return Err(AlteryxError::Config(
                "ALTERYX_API_VERSION v3 needs OAuth2 (ALTERYX_AUTH=oauth2): the v3 endpoints do not accept OAuth1 signatures".into(),
            ));
        }
        if key.trim().is_empty() {
            return Err(AlteryxError::Config("ALTERYX_KEY is empty".into()));
        }
        if secret.expose().is_empty() {
            return Err(AlteryxError::Config("ALTERYX_SECRET is empty".into()));
        }
        Ok(ServerConfig {
            base_url,
            key: key.trim().to_string(),
            secret,
            auth: scheme,
            api,
        })
    }
}

/// Client tunables; the defaults suit a Lambda with a 60 s timeout.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
    /// No new attempt starts after this much time has passed since the first.
    pub max_elapsed: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            max_elapsed: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What went wrong talking to Alteryx. `Display` names the operation and, where Alteryx
/// answered, the HTTP status and Alteryx's own message; the cause (reqwest's error, a JSON
/// error) is the [`source`](std::error::Error::source) — render the whole story with
/// [`crate::error_chain`]. Nothing here holds a secret, a token or a signature.
#[derive(Debug, thiserror::Error)]
pub enum AlteryxError {
    #[error("{operation}: Alteryx answered {status}: {message}")]
    Api {
        status: u16,
        operation: &'static str,
        message: String,
        /// The answer's `Retry-After` (seconds), when it had one.
        retry_after: Option<Duration>,
    },
    #[error("{operation}: Alteryx refused the credentials ({status}): {message}")]
    Unauthorized {
        status: u16,
        operation: &'static str,
        message: String,
    },
    /// No (complete) answer: refused, reset, DNS, TLS.
    #[error("{operation}: cannot reach Alteryx")]
    Transport {
        operation: &'static str,
        #[source]
        source: HttpError,
    },
    /// The server's certificate is not trusted; sending again meets the same certificate.
    #[error(
        "{operation}: cannot reach Alteryx: the server's TLS certificate is not trusted (if it comes from a private CA, set ALTERYX_CA_BUNDLE to that CA's PEM file)"
    )]
    UntrustedCertificate {
        operation: &'static str,
        #[source]
        source: HttpError,
    },
    #[error("{operation}: Alteryx did not answer within {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
        #[source]
        source: HttpError,
    },
    /// Not sent: the caller's deadline left no time for it.
    #[error("{operation}: not sent, the invocation's deadline is too close")]
    Deadline { operation: &'static str },
    #[error("{operation}: unexpected answer from Alteryx ({status}): {detail}")]
    InvalidResponse {
        operation: &'static str,
        status: u16,
        detail: String,
        /// The JSON error, when the answer did not parse or did not fit the model.
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("Alteryx configuration: {0}")]
    Config(String),
    #[error("Alteryx configuration: ALTERYX_URL {url:?} is not a URL")]
    InvalidUrl {
        /// Without its query string.
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("Alteryx configuration: trusted certificates")]
    Tls(#[source] crate::tls::TlsError),
    #[error("Alteryx configuration: HTTP client")]
    HttpClient(#[source] HttpError),
    /// The request asks for something this API version's request cannot carry; sending it
    /// anyway would run the job without it.
    #[error(
        "{operation}: {asker}asks for {fields}, which API {api} cannot carry (only v3's job request has workerTag and credentialId); use a /webapi/ ALTERYX_URL or set ALTERYX_API_VERSION=v3 in the secret, or remove the field"
    )]
    Unsupported {
        operation: &'static str,
        /// ``rule `x` `` or `the request `.
        asker: String,
        /// The rule fields, e.g. `` `worker_tag` (workerTag) ``.
        fields: String,
        api: &'static str,
    },
    #[error("{operation}: cannot make a request URL from the path {path:?}")]
    InvalidPath {
        operation: &'static str,
        path: String,
        #[source]
        source: url::ParseError,
    },
}

impl AlteryxError {
    /// Whether a later attempt (a redelivery, a retry) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlteryxError::Transport { .. }
            | AlteryxError::Timeout { .. }
            | AlteryxError::Deadline { .. } => true,
            AlteryxError::Api { status, .. } => *status == 429 || *status >= 500,
            // A 404 that is not Alteryx's JSON is a proxy's page (maintenance): it passes.
            AlteryxError::InvalidResponse { status, .. } => {
                *status == 429 || *status == 404 || *status >= 500
            }
            // The same certificate comes back on every attempt until someone sets
            // ALTERYX_CA_BUNDLE (or renews it): a person acts, then `executions retry`.
            AlteryxError::UntrustedCertificate { .. }
            | AlteryxError::Unauthorized { .. }
            | AlteryxError::Config(_)
            | AlteryxError::InvalidUrl { .. }
            | AlteryxError::Tls(_)
            | AlteryxError::HttpClient(_)
            | AlteryxError::InvalidPath { .. }
            // The rule asks for what the API version cannot carry: the rule must change.
            | AlteryxError::Unsupported { .. } => false,
        }
    }

    /// For a job submission that failed: whether Alteryx may have queued the job anyway.
    /// Only a request that never reached Alteryx, or an answer that says it did not take the
    /// job (4xx, 429, 503), rules a job out; a timeout, a reset or a 500/502/504 after the
    /// request was sent, or a 2xx answer that could not be read, may hide a queued job.
    pub fn may_have_queued_a_job(&self) -> bool {
        match self {
            AlteryxError::Transport { source, .. } | AlteryxError::Timeout { source, .. } => {
                !source.get_ref().is_connect()
            }
            AlteryxError::Api { status, .. } => *status >= 500 && *status != 503,
            AlteryxError::InvalidResponse { status, .. } => {
                (200..300).contains(status) || (*status >= 500 && *status != 503)
            }
            AlteryxError::Unauthorized { .. }
            | AlteryxError::UntrustedCertificate { .. }
            | AlteryxError::Deadline { .. }
            | AlteryxError::Config(_)
            | AlteryxError::InvalidUrl { .. }
            | AlteryxError::Tls(_)
            | AlteryxError::HttpClient(_)
            | AlteryxError::InvalidPath { .. }
            | AlteryxError::Unsupported { .. } => false,
        }
    }

    /// The server's `Retry-After`, when its answer had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AlteryxError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AlteryxError::Api { status, .. }
            | AlteryxError::Unauthorized { status, .. }
            | AlteryxError::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A reqwest error without its URL. Request URLs carry OAuth1 signatures in their query, so
/// the only way in, [`From<reqwest::Error>`], drops the URL: neither `Display`, `Debug` nor
/// the causes of an `HttpError` can print one.
#[derive(Debug)]
pub struct HttpError(reqwest::Error);

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> Self {
        HttpError(e.without_url())
    }
}

impl HttpError {
    /// reqwest's error (its URL already removed), e.g. for `is_connect()` / `is_timeout()`.
    pub fn get_ref(&self) -> &reqwest::Error {
        &self.0
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A URL without its query string (where OAuth1 signatures live), for messages and logs.
pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// An optional override (`ALTERYX_API_VERSION`, `ALTERYX_AUTH`): blank means none, otherwise
/// one of `choices`, case-insensitively; anything else is an error naming the variable.
fn parse_override<T: Copy>(
    variable: &str,
    value: Option<&str>,
    choices: &[(&str, T)],
) -> Result<Option<T>, AlteryxError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, choice)| Some(*choice))
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            AlteryxError::Config(format!(
                "{variable} {value:?} is not {}",
                names.join(" or ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, api: Option<&str>, auth: Option<&str>) -> Result<ServerConfig, AlteryxError> {
        ServerConfig::from_parts(url, "k", SecretString::new("s"), api, auth)
    }

    #[test]
    fn url_chooses_auth_and_api() {
        let c = cfg("https://alteryx.example.com/gallery/api/", None, None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth1, ApiVersion::V1));
        let c = cfg("https://alteryx.example.com/webapi", None, None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V3));
        assert_eq!(c.base_url.as_str(), "https://alteryx.example.com/webapi/");
        let c = cfg("https://h/webapi/", Some("v1"), None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V1));
        let c = cfg("https://h/gallery/api/", Some("V3"), None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V3));
        let c = cfg("https://h/webapi/", None, Some("OAuth1")).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth1, ApiVersion::V1));
    }

    #[test]
    fn unknown_url_shapes_follow_overrides_or_look_like_a_gallery() {
        // Behind a reverse proxy the path says nothing; the overrides decide.
        let c = cfg("https://proxy.acme.com/alteryx/", Some("v3"), None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V3));
        let c = cfg("https://proxy.acme.com/alteryx/", None, Some("oauth2")).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V3));
        let c = cfg("https://proxy.acme.com/alteryx/", Some("v1"), None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth1, ApiVersion::V1));
        let c = cfg(
            "https://proxy.acme.com/alteryx/",
            Some("v1"),
            Some("oauth2"),
        )
        .unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V1));
        // A Gallery on its own host.
        let c = cfg("https://gallery.acme.com/api/", None, None).unwrap();
        assert_eq!((c.auth, c.api), (AuthScheme::OAuth1, ApiVersion::V1));
        let e = cfg("https://h/gallery/api/", Some("v3"), Some("oauth1")).unwrap_err();
        assert!(e.to_string().contains("needs OAuth2"), "{e}");
    }

    #[test]
    fn bad_config_is_named_and_secret_free() {
        for (url, api, auth, want) in [
            ("not a url", None, None, "not a URL"),
            ("ftp://h/gallery/api/", None, None, "http(s)"),
            ("https://h/somewhere/", None, None, "/webapi/"),
            ("https://h/webapi/", Some("v2"), None, "ALTERYX_API_VERSION"),
            ("https://h/webapi/", None, Some("basic"), "ALTERYX_AUTH"),
        ] {
            let e = cfg(url, api, auth).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e =
            ServerConfig::from_parts("https://h/webapi/", "k", SecretString::new(""), None, None)
                .unwrap_err()
                .to_string();
        assert!(e.contains("ALTERYX_SECRET is empty"), "{e}");
        let ok = ServerConfig::from_parts(
            "https://h/webapi/",
            "k",
            SecretString::new("hunter2"),
            None,
            None,
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    /// A real reqwest error, for a request whose URL carries an OAuth1-style signature.
    async fn request_error() -> reqwest::Error {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tls = crate::tls::alteryx_client_config().unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap();
        http.get(format!(
            "http://127.0.0.1:{port}/gallery/api/v1/workflows/?oauth_signature=SIGNATURE"
        ))
        .send()
        .await
        .unwrap_err()
    }

    #[tokio::test]
    async fn retryable_classes() {
        let api = |status| AlteryxError::Api {
            status,
            operation: "x",
            message: String::new(),
            retry_after: None,
        };
        assert!(api(429).is_retryable());
        assert!(api(500).is_retryable() && api(503).is_retryable());
        assert!(!api(400).is_retryable() && !api(404).is_retryable());
        assert!(api(502).may_have_queued_a_job() && !api(503).may_have_queued_a_job());
        assert!(!api(400).may_have_queued_a_job() && !api(429).may_have_queued_a_job());
        let proxy_404 = AlteryxError::InvalidResponse {
            operation: "get job",
            status: 404,
            detail: "HTML".into(),
            source: None,
        };
        assert!(proxy_404.is_retryable() && !proxy_404.may_have_queued_a_job());
        assert!(
            !AlteryxError::Unauthorized {
                status: 401,
                operation: "x",
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            AlteryxError::Timeout {
                operation: "x",
                after: Duration::from_secs(1),
                source: request_error().await.into(),
            }
            .is_retryable()
        );
    }

    #[tokio::test]
    async fn request_errors_keep_their_cause_but_never_the_url() {
        let raw = request_error().await;
        assert!(
            format!("{raw} {raw:?}").contains("SIGNATURE"),
            "reqwest itself prints the URL, so this test can fail: {raw:?}"
        );
        let e = AlteryxError::Transport {
            operation: "list workflows",
            source: raw.into(),
        };
        let chain = crate::error_chain(&e);
        assert!(
            chain.starts_with("list workflows: cannot reach Alteryx: ") && chain.len() > 40,
            "the cause is kept: {chain}"
        );
        for text in [chain, e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("SIGNATURE"), "{text}");
            assert!(!text.contains("oauth_signature"), "{text}");
        }
    }
}
