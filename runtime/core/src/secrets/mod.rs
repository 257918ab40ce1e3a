//! Alteryx credentials: the redacting [`SecretString`], and where credentials come from —
//! AWS Secrets Manager in the recipe's JSON layout, or the `ALTERYX_URL` / `ALTERYX_KEY` /
//! `ALTERYX_SECRET` environment variables for local use.
//!
//! The secret JSON is the one the well-known Python recipe uses, so an existing secret works
//! unchanged: `{"ALTERYX_URL": "https://host/gallery/api/", "ALTERYX_KEY": "...",
//! "ALTERYX_SECRET": "..."}`, optionally with `ALTERYX_API_VERSION` (`v1`|`v3`) and
//! `ALTERYX_AUTH` (`oauth1`|`oauth2`). Errors name the secret and the field, never a value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::alteryx::{AlteryxError, ServerConfig};
pub use crate::secret_string::SecretString;

mod pool;
pub use pool::{ClientPool, DEFAULT_CLIENT_MAX_AGE, PoolError};

/// The AWS SDK's error for `GetSecretValue` (boxed: it is large, and errors travel far).
pub type SecretsManagerError = Box<
    aws_sdk_secretsmanager::error::SdkError<
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
    >,
>;

/// Why credentials could not be had. `Display` names the secret and the field, never a value;
/// the cause (the AWS SDK's error, the Alteryx configuration error) is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret `{secret_id}` does not exist (Secrets Manager)")]
    NotFound { secret_id: String },
    /// No `#[source]` on purpose: the JSON error is reduced to its position, so no part of
    /// the secret's text can reach a message.
    #[error(
        "secret `{secret_id}` is not JSON ({detail}); expected {{\"ALTERYX_URL\", \"ALTERYX_KEY\", \"ALTERYX_SECRET\"}}"
    )]
    NotJson { secret_id: String, detail: String },
    #[error("secret `{secret_id}` has no `{field}` field")]
    MissingField {
        secret_id: String,
        field: &'static str,
    },
    #[error("not allowed to read secret `{secret_id}`")]
    AccessDenied {
        secret_id: String,
        #[source]
        source: SecretsManagerError,
    },
    #[error("reading secret `{secret_id}`")]
    Aws {
        secret_id: String,
        #[source]
        source: SecretsManagerError,
    },
    #[error("environment variable {var} is not set")]
    MissingEnv { var: &'static str },
    #[error(
        "no Alteryx credentials configured: set ALTERYX_SECRET_ID, a rule's secret_id, or ALTERYX_URL/ALTERYX_KEY/ALTERYX_SECRET"
    )]
    NoSecretConfigured,
    #[error("secret `{secret_id}`: {message}")]
    Invalid { secret_id: String, message: String },
    #[error("secret `{secret_id}` does not describe a usable Alteryx Server")]
    Config {
        secret_id: String,
        #[source]
        source: AlteryxError,
    },
}

impl SecretsError {
    /// Only an unreachable or throttled Secrets Manager is worth a redelivery; a missing or
    /// malformed secret stays so until someone fixes it.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretsError::Aws { .. })
    }
}

/// Parse the recipe's secret JSON into a server configuration.
pub fn parse_secret_json(secret_id: &str, text: &str) -> Result<ServerConfig, SecretsError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| SecretsError::NotJson {
            secret_id: secret_id.to_string(),
            // Line and column only: serde's message never quotes the input, but be explicit.
            detail: format!("syntax error at line {} column {}", e.line(), e.column()),
        })?;
    let field = |name: &'static str| -> Result<Option<String>, SecretsError> {
        match value.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(SecretsError::Invalid {
                secret_id: secret_id.to_string(),
                message: format!("`{name}` must be a string"),
            }),
        }
    };
    if !value.is_object() {
        return Err(SecretsError::NotJson {
            secret_id: secret_id.to_string(),
            detail: "the value is not a JSON object".into(),
        });
    }
    let required = |name: &'static str| -> Result<String, SecretsError> {
        field(name)?
            .filter(|v| !v.is_empty())
            .ok_or(SecretsError::MissingField {
                secret_id: secret_id.to_string(),
                field: name,
            })
    };
    let url = required("ALTERYX_URL")?;
    let key = required("ALTERYX_KEY")?;
    let secret = SecretString::new(required("ALTERYX_SECRET")?);
    ServerConfig::from_parts(
        &url,
        &key,
        secret,
        field("ALTERYX_API_VERSION")?.as_deref(),
        field("ALTERYX_AUTH")?.as_deref(),
    )
    .map_err(|source| SecretsError::Config {
        secret_id: secret_id.to_string(),
        source,
    })
}

/// Where credentials come from.
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync {
    /// The configuration for `secret_id`, or the default one when `None`.
    async fn server_config(&self, secret_id: Option<&str>) -> Result<ServerConfig, SecretsError>;
    /// Forget anything cached for `secret_id` (it was refused).
    async fn invalidate(&self, _secret_id: Option<&str>) {}
}

/// Fixed credentials (tests, `demo`).
pub struct StaticSource(pub ServerConfig);

#[async_trait::async_trait]
impl CredentialSource for StaticSource {
    async fn server_config(&self, _: Option<&str>) -> Result<ServerConfig, SecretsError> {
        Ok(self.0.clone())
    }
}

/// Secrets Manager, each secret cached per process (`SECRETS_CACHE_SECONDS`, default five
/// minutes). A rule's `secret_id` wins; then the default id (`ALTERYX_SECRET_ID`); then the
/// environment's credentials.
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    default_secret_id: Option<String>,
    env_fallback: Option<ServerConfig>,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, ServerConfig)>>,
}

/// How long a secret read from Secrets Manager is used by default.
pub const DEFAULT_SECRET_CACHE: Duration = Duration::from_secs(300);

impl SecretsManagerSource {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        default_secret_id: Option<String>,
        env_fallback: Option<ServerConfig>,
    ) -> Self {
        Self {
            client,
            default_secret_id,
            env_fallback,
            cache_ttl: DEFAULT_SECRET_CACHE,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Use a secret at most `ttl` before reading it again.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    async fn fetch(&self, secret_id: &str) -> Result<ServerConfig, SecretsError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                let secret_id = secret_id.to_string();
                match e.as_service_error() {
                    Some(GetSecretValueError::ResourceNotFoundException(_)) => {
                        SecretsError::NotFound { secret_id }
                    }
                    Some(s) if s.meta().code() == Some("AccessDeniedException") => {
                        SecretsError::AccessDenied {
                            secret_id,
                            source: Box::new(e),
                        }
                    }
                    _ => SecretsError::Aws {
                        secret_id,
                        source: Box::new(e),
                    },
                }
            })?;
        let text = out.secret_string().ok_or_else(|| SecretsError::Invalid {
            secret_id: secret_id.to_string(),
            message: "the secret has no string value (binary secrets are not supported)".into(),
        })?;
        parse_secret_json(secret_id, text)
    }
}

#[async_trait::async_trait]
impl CredentialSource for SecretsManagerSource {
    async fn server_config(&self, secret_id: Option<&str>) -> Result<ServerConfig, SecretsError> {
        let Some(id) = secret_id.or(self.default_secret_id.as_deref()) else {
            return self
                .env_fallback
                .clone()
                .ok_or(SecretsError::NoSecretConfigured);
        };
        if let Some((at, config)) = self.cache.lock().await.get(id)
            && at.elapsed() < self.cache_ttl
        {
            return Ok(config.clone());
        }
        let config = self.fetch(id).await?;
        self.cache
            .lock()
            .await
            .insert(id.to_string(), (Instant::now(), config.clone()));
        Ok(config)
    }

    async fn invalidate(&self, secret_id: Option<&str>) {
        if let Some(id) = secret_id.or(self.default_secret_id.as_deref()) {
            self.cache.lock().await.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_json_parses_and_errors_name_the_field_not_the_value() {
        let ok = parse_secret_json(
            "alteryx/prod",
            r#"{"ALTERYX_URL":"http://h/gallery/api/","ALTERYX_KEY":"k","ALTERYX_SECRET":"hunter2","OTHER":1}"#,
        )
        .unwrap();
        assert_eq!(ok.key, "k");
        let e = parse_secret_json(
            "alteryx/prod",
            r#"{"ALTERYX_URL":"http://h/gallery/api/","ALTERYX_SECRET":"hunter2"}"#,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            SecretsError::MissingField {
                field: "ALTERYX_KEY",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "secret `alteryx/prod` has no `ALTERYX_KEY` field"
        );
        let e = parse_secret_json("s", "ALTERYX_SECRET=hunter2").unwrap_err();
        assert!(matches!(e, SecretsError::NotJson { .. }));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse_secret_json(
            "s",
            r#"{"ALTERYX_URL":"nope","ALTERYX_KEY":"k","ALTERYX_SECRET":"hunter2"}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // The Alteryx configuration error is kept as the cause, secret-free as well.
        let chain = crate::error_chain(&e);
        assert!(
            chain.starts_with("secret `s` does not describe a usable Alteryx Server: ")
                && chain.contains("ALTERYX_URL"),
            "{chain}"
        );
        assert!(!chain.contains("hunter2") && !format!("{e:?}").contains("hunter2"));
    }
}
