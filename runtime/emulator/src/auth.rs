//! Authentication: OAuth2 client-credentials tokens (`POST /webapi/oauth2/token`) and the
//! middleware that guards each base: bearer tokens at `/webapi/`, OAuth1 signatures (verified
//! by [`crate::oauth1`]) at `/gallery/api/`. Refusals are 401 with a message saying why.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::oauth1;
use crate::state::{Shared, State as EmuState};
use crate::stats::Operation;
use crate::{message, reply};

/// Largest request body read to verify an OAuth1 signature.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `POST /webapi/oauth2/token`: credentials in the form body, or HTTP Basic with only
/// `grant_type` in the body.
pub(crate) async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.lock().stats.count(Operation::Token);
    let form: HashMap<String, String> = form_pairs(&body).into_iter().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
        (_, _, Some(pair)) => pair,
        _ => {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "no client credentials"}),
            );
        }
    };
    let mut s = state.lock();
    if s.credentials.get(&id) != Some(&secret) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "unknown client id or wrong secret"}),
        );
    }
    let token = format!("emu-{:032x}", rand::random::<u128>());
    let ttl = s.config.token_ttl;
    s.tokens.insert(token.clone(), Instant::now() + ttl);
    s.stats.tokens_issued += 1;
    reply(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "expires_in": ttl.as_secs()}),
    )
}

/// Any other method on the token path.
pub(crate) async fn token_method() -> Response {
    message(StatusCode::METHOD_NOT_ALLOWED, "use POST for oauth2/token")
}

/// Middleware for `/webapi/`: a live bearer token from [`token`].
pub(crate) async fn bearer(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return message(
            StatusCode::UNAUTHORIZED,
            "Authorization: Bearer token required (POST /webapi/oauth2/token first)",
        );
    };
    let expiry = state.lock().tokens.get(&token).copied();
    match expiry {
        Some(expiry) if Instant::now() < expiry => next.run(request).await,
        Some(_) => message(StatusCode::UNAUTHORIZED, "access token expired"),
        None => message(StatusCode::UNAUTHORIZED, "invalid access token"),
    }
}

/// Middleware for `/gallery/api/`: an OAuth1 HMAC-SHA1 signature over the query, the
/// `Authorization: OAuth` header parameters and, for form bodies, the form.
pub(crate) async fn oauth1(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let verified = {
        let mut s = state.lock();
        verify_oauth1(&mut s, &parts.method, &parts.uri, &parts.headers, &body)
    };
    match verified {
        Ok(()) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Err(reason) => message(StatusCode::UNAUTHORIZED, reason),
    }
}

fn verify_oauth1(
    s: &mut EmuState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    let base_url = format!("http://{host}{}", uri.path());
    let mut params: Vec<(String, String)> = uri
        .query()
        .map(|q| form_pairs(q.as_bytes()))
        .unwrap_or_default();
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        params.extend(oauth1::header_params(auth));
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(form_pairs(body));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let EmuState {
        credentials,
        nonces,
        config,
        ..
    } = s;
    oauth1::verify(
        method.as_str(),
        &base_url,
        &params,
        credentials,
        nonces,
        now,
        config.max_clock_skew,
    )
    .map(|_| ())
    .map_err(|r| r.to_string())
}

pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
