//! The alteryx-router pipeline library: routes S3 "Object Created" events to Alteryx Server
//! workflows. The Lambda (`alteryx-router-lambda`) and the CLI (`alteryx-router`) are thin
//! binaries over it; `docs/architecture.md` describes the crates, the modules and the contracts.
//!
//! The pipeline, one module per stage:
//!
//! 1. [`event`] decodes EventBridge / S3 / SQS / SNS inputs into [`event::ObjectCreated`];
//! 2. [`rules`] holds the rule model, its validation, the glob matcher and the rule stores;
//! 3. [`template`] renders question values from an object's facts ([`render`] fetches the
//!    metadata and pre-signed URL a template may ask for), [`plugin`] runs an optional
//!    WebAssembly component over the start of the object;
//! 4. [`executions`] claims one execution per (rule, object version) so duplicates are skipped;
//! 5. [`alteryx`] submits the job to Alteryx Server (v1 OAuth1 or v3 OAuth2), with credentials
//!    from [`secrets`];
//! 6. [`router`] ties the stages together; [`tracker`] later records each job's outcome (keeping
//!    what Alteryx said about it: [`job_report`]) and repairs claims whose invocation died;
//!    [`notify`] publishes what a person must see.
//!
//! Around them: [`config`] reads the environment contract once and assembles the pipeline;
//! [`aws`] and [`tls`] hold the process-wide AWS configuration and trusted roots; [`tables`]
//! defines the DynamoDB tables; [`logging`] sets up `tracing`; [`metrics`] turns what an
//! invocation did into CloudWatch metrics.

pub mod alteryx;
pub mod aws;
pub mod backfill;
pub mod config;
pub mod event;
pub mod executions;
pub mod job_report;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod plugin;
pub mod render;
pub mod router;
pub mod rules;
pub mod secret_string;
pub mod secrets;
pub mod tables;
pub mod template;
pub mod tls;
pub mod tracker;

/// An error and its causes, `: `-separated, as one line (for logs and execution records, which
/// keep the whole story where `Display` alone would drop the causes).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
