//! One [`AlteryxClient`] per secret id for the life of the process, so connections and OAuth2
//! tokens are reused across events. A client is dropped after Alteryx refuses its credentials
//! so a rotated secret is read again.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{CredentialSource, SecretsError};
use crate::alteryx::{AlteryxClient, ClientOptions};

pub struct ClientPool {
    source: Arc<dyn CredentialSource>,
    options: ClientOptions,
    clients: Mutex<HashMap<Option<String>, AlteryxClient>>,
}

impl ClientPool {
    pub fn new(source: Arc<dyn CredentialSource>, options: ClientOptions) -> Self {
        Self {
            source,
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `secret_id` (None: the default credentials).
    pub async fn client(&self, secret_id: Option<&str>) -> Result<AlteryxClient, SecretsError> {
        let key = secret_id.map(str::to_string);
        if let Some(c) = self.clients.lock().await.get(&key) {
            return Ok(c.clone());
        }
        let config = self.source.server_config(secret_id).await?;
        let client = AlteryxClient::new(config, self.options.clone()).map_err(|source| {
            SecretsError::Config {
                secret_id: secret_id.unwrap_or("(default)").to_string(),
                source,
            }
        })?;
        self.clients.lock().await.insert(key, client.clone());
        Ok(client)
    }

    /// Forget the client for `secret_id` (after a 401/403).
    pub async fn invalidate(&self, secret_id: Option<&str>) {
        self.clients
            .lock()
            .await
            .remove(&secret_id.map(str::to_string));
        self.source.invalidate(secret_id).await;
    }
}
