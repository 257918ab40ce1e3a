//! Trusted root certificates, read once per process and shared by every HTTPS client: the AWS
//! SDK's and the Alteryx client's.
//!
//! Why this exists: left alone, each client loads the system store itself, and
//! `rustls-native-certs` reads the bundle file *and then every file of the certificate
//! directory* (on Debian ~280 files holding the same certificates as the bundle; on Amazon
//! Linux the directory holds the bundle again). That was the largest piece of the router's
//! cold start that was our own work (see `bench/profile-notes.md`).
//!
//! Which certificates:
//! - `SSL_CERT_FILE` / `SSL_CERT_DIR` when set: exactly what they name, read as
//!   `rustls-native-certs` reads them;
//! - otherwise the system bundle file alone (`/etc/ssl/certs/ca-certificates.crt`,
//!   `/etc/pki/tls/certs/ca-bundle.crt`, ...: `update-ca-certificates` and `update-ca-trust`
//!   put every trusted root there); the full native search only when there is no bundle;
//! - for Alteryx only, plus the PEM file named by `ALTERYX_CA_BUNDLE`: on-premises Alteryx
//!   Servers often have certificates from a private CA, which must not be added to the trust of
//!   the AWS clients.
//!
//! Only certificates rustls accepts as trust anchors are kept, so no client ever meets one it
//! cannot parse.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine as _;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The system's trusted roots, read on first use.
struct SystemRoots {
    certs: Vec<CertificateDer<'static>>,
    store: Arc<RootCertStore>,
}

static SYSTEM_ROOTS: LazyLock<SystemRoots> = LazyLock::new(load_system_roots);

fn load_system_roots() -> SystemRoots {
    let started = Instant::now();
    let explicit =
        std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some();
    let bundle = if explicit {
        None
    } else {
        openssl_probe::probe().cert_file
    };
    let (source, candidates) = match bundle.as_deref().map(|p| (p, std::fs::read(p))) {
        Some((path, Ok(pem))) => (path.display().to_string(), parse_pem(&pem, path)),
        other => {
            if let Some((path, Err(e))) = other {
                tracing::warn!(bundle = %path.display(), error = %e, "cannot read the certificate bundle; searching the system store");
            }
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "while loading system root certificates");
            }
            ("system store".to_string(), found.certs)
        }
    };
    let mut store = RootCertStore::empty();
    let mut certs = Vec::with_capacity(candidates.len());
    for cert in candidates {
        if store.add(cert.clone()).is_ok() {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        tracing::warn!(%source, "no trusted root certificates found: HTTPS connections will fail");
    }
    tracing::debug!(%source, roots = certs.len(), elapsed_us = started.elapsed().as_micros() as u64,
        "trusted roots loaded");
    SystemRoots {
        certs,
        store: Arc::new(store),
    }
}

/// The `CERTIFICATE` blocks of a PEM file. Decoded with the `base64` crate rather than
/// `rustls-pki-types`' PEM reader: that one decodes in constant time, which protects private
/// keys and costs ~30x the instructions; root certificates are public, and this is the largest
/// piece of CPU work in a cold start (callgrind, see `bench/profile-notes.md`).
fn parse_pem(pem: &[u8], path: &Path) -> Vec<CertificateDer<'static>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    // `from_utf8` has an ASCII fast path; `from_utf8_lossy` walks every byte (3M instructions
    // for a 220 KB bundle).
    let text = match std::str::from_utf8(pem) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(pem),
    };
    let mut certs = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            tracing::warn!(file = %path.display(), "a PEM certificate block has no END line");
            break;
        };
        let b64: Vec<u8> = body[..end]
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(der) => certs.push(CertificateDer::from(der)),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable PEM block")
            }
        }
        rest = &body[end + END.len()..];
    }
    certs
}

/// Errors building a TLS configuration; they name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ALTERYX_CA_BUNDLE {path}: {message}")]
    CaBundle { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The rustls configuration of the Alteryx client: the system roots plus `ALTERYX_CA_BUNDLE`.
pub fn alteryx_client_config() -> Result<rustls::ClientConfig, TlsError> {
    let system = &*SYSTEM_ROOTS;
    let store = match std::env::var_os("ALTERYX_CA_BUNDLE").filter(|v| !v.is_empty()) {
        None => Arc::clone(&system.store),
        Some(path) => {
            let path = Path::new(&path);
            let fail = |message: String| TlsError::CaBundle {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let mut store = (*system.store).clone();
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| fail(format!("not PEM: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(fail("holds no certificate".into()));
            }
            Arc::new(store)
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The AWS SDK's HTTPS client, as the SDK builds its default one (rustls with aws-lc, proxy
/// settings from the environment) but trusting the shared system roots.
pub fn aws_http_client() -> SharedHttpClient {
    let mut pem = String::new();
    for cert in &SYSTEM_ROOTS.certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        // Base64 is ASCII, so any byte offset is a character boundary.
        let mut at = 0;
        while at < encoded.len() {
            let end = (at + 64).min(encoded.len());
            pem.push_str(&encoded[at..end]);
            pem.push('\n');
            at = end;
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let context = TlsContext::builder()
        .with_trust_store(
            TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(pem.into_bytes()),
        )
        .build()
        .unwrap_or_default();
    let inner = aws_smithy_http_client::Builder::new().build_with_connector_fn(
        move |settings, components| {
            let mut builder = aws_smithy_http_client::ConnectorBuilder::default()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(context.clone());
            builder.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                builder.set_sleep_impl(components.sleep_impl());
            }
            builder.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
            builder.build()
        },
    );
    SharedHttpClient::new(BuildOnFirstRequest(inner))
}

/// The SDK's hyper client builds a throwaway connector — TLS configuration, roots and all —
/// each time an SDK client is constructed, only to load certificates early ("validate base
/// client config"; it always answers Ok). With four clients per process that was four extra
/// parses of every root. This wrapper leaves that out; the first request builds the connector
/// it uses, once per connector settings, as before.
#[derive(Debug)]
struct BuildOnFirstRequest(SharedHttpClient);

impl HttpClient for BuildOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}
