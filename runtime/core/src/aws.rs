//! Shared AWS SDK configuration, loaded once per process.
//!
//! The SDK itself honours `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`),
//! which is how tests and local runs point every client at moto's server. We only add a
//! default region for local runs, where nothing else sets one, so that a missing region is
//! never the first error a new user meets.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use tokio::sync::OnceCell;

static SDK_CONFIG: OnceCell<aws_config::SdkConfig> = OnceCell::const_new();

/// The process-wide AWS SDK configuration (credentials chain, region, endpoint override).
pub async fn sdk_config() -> aws_config::SdkConfig {
    SDK_CONFIG
        .get_or_init(|| async {
            // The SDK's default HTTPS client, trusting the roots the Alteryx client also uses
            // (read once; see `tls`).
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(crate::tls::aws_http_client());
            let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            if !region_set {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
            loader.load().await
        })
        .await
        .clone()
}

/// True when running inside AWS Lambda (the runtime sets these variables).
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// DynamoDB requests (attempts) made by this process's execution-store clients: reads
/// (`GetItem`, `BatchGetItem`, `Query`, `Scan`) and writes (everything else). The tracker
/// reports the difference over a pass.
static DYNAMODB_READS: AtomicU64 = AtomicU64::new(0);
static DYNAMODB_WRITES: AtomicU64 = AtomicU64::new(0);

/// `(reads, writes)` so far.
pub fn dynamodb_requests() -> (u64, u64) {
    (
        DYNAMODB_READS.load(Ordering::Relaxed),
        DYNAMODB_WRITES.load(Ordering::Relaxed),
    )
}

/// Counts each DynamoDB request attempt into [`dynamodb_requests`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountDynamoRequests;

impl Intercept for CountDynamoRequests {
    fn name(&self) -> &'static str {
        "CountDynamoRequests"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(Metadata::name).unwrap_or("");
        let counter = match operation {
            "GetItem" | "BatchGetItem" | "Query" | "Scan" => &DYNAMODB_READS,
            _ => &DYNAMODB_WRITES,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
