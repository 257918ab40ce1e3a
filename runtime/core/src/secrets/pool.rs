//! One [`AlteryxClient`] per secret id, so connections and OAuth2 tokens are reused across
//! events, for as long as the secret itself is cached: a client older than that is built
//! again from a fresh read, so a changed `ALTERYX_URL` or key is seen within the same time.
//!
//! When Alteryx refuses the credentials (401/403), [`ClientPool::with_client`] drops the
//! client and the cached secret, reads the secret again and tries the request once more: a
//! rotated secret costs one refused request, not a failed execution. A refused request queued
//! nothing at Alteryx, so trying it again is safe even for a job submission.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::{CredentialSource, SecretsError};
use crate::alteryx::{AlteryxClient, AlteryxError, ClientOptions};

/// How long a client is kept by default: as long as a secret is cached.
pub const DEFAULT_CLIENT_MAX_AGE: Duration = super::DEFAULT_SECRET_CACHE;

pub struct ClientPool {
    source: Arc<dyn CredentialSource>,
    options: ClientOptions,
    max_age: Duration,
    clients: Mutex<HashMap<Option<String>, (Instant, AlteryxClient)>>,
}

/// Why a call through the pool failed: the credentials could not be had, or Alteryx failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("credentials")]
    Credentials(#[source] SecretsError),
    #[error(transparent)]
    Alteryx(#[from] AlteryxError),
}

impl PoolError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PoolError::Credentials(e) => e.is_retryable(),
            PoolError::Alteryx(e) => e.is_retryable(),
        }
    }
}

impl ClientPool {
    pub fn new(source: Arc<dyn CredentialSource>, options: ClientOptions) -> Self {
        Self {
            source,
            options,
            max_age: DEFAULT_CLIENT_MAX_AGE,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Keep clients at most `max_age` (the secret cache's lifetime).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The options clients are built with (timeouts, retries).
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The client for `secret_id` (None: the default credentials).
    pub async fn client(&self, secret_id: Option<&str>) -> Result<AlteryxClient, SecretsError> {
        let key = secret_id.map(str::to_string);
        if let Some((built, c)) = self.clients.lock().await.get(&key)
            && built.elapsed() < self.max_age
        {
            return Ok(c.clone());
        }
        let config = self.source.server_config(secret_id).await?;
        let client = AlteryxClient::new(config, self.options.clone()).map_err(|source| {
            SecretsError::Config {
                secret_id: secret_id.unwrap_or("(default)").to_string(),
                source,
            }
        })?;
        self.clients
            .lock()
            .await
            .insert(key, (Instant::now(), client.clone()));
        Ok(client)
    }

    /// Run `op` with the client for `secret_id`; if Alteryx refuses the credentials, read the
    /// secret again and run it once more with the new client.
    pub async fn with_client<T, F, Fut>(
        &self,
        secret_id: Option<&str>,
        op: F,
    ) -> Result<T, PoolError>
    where
        F: Fn(AlteryxClient) -> Fut,
        Fut: Future<Output = Result<T, AlteryxError>>,
    {
        let client = self
            .client(secret_id)
            .await
            .map_err(PoolError::Credentials)?;
        match op(client).await {
            Err(AlteryxError::Unauthorized { status, .. }) => {
                tracing::warn!(
                    secret = secret_id.unwrap_or("(default)"),
                    status,
                    "Alteryx refused the credentials; reading the secret again and trying once more"
                );
                self.invalidate(secret_id).await;
                let client = self
                    .client(secret_id)
                    .await
                    .map_err(PoolError::Credentials)?;
                Ok(op(client).await?)
            }
            other => Ok(other?),
        }
    }

    /// Forget the client for `secret_id` and the cached secret (after a 401/403).
    pub async fn invalidate(&self, secret_id: Option<&str>) {
        self.clients
            .lock()
            .await
            .remove(&secret_id.map(str::to_string));
        self.source.invalidate(secret_id).await;
    }
}
