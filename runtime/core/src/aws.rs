//! Shared AWS SDK configuration, loaded once per process.
//!
//! The SDK itself honours `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`),
//! which is how tests and local runs point every client at moto's server. We only add a
//! default region for local runs, where nothing else sets one, so that a missing region is
//! never the first error a new user meets.

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
