//! The Lambda function: `bootstrap` for the `provided.al2023` runtime.
//!
//! Everything expensive (AWS config, clients, the plugin engine, the rule cache) is created
//! once per cold start and shared by every invocation of the sandbox. `ROUTER_MODE=tracker`
//! turns the same binary into the scheduled job tracker.
//!
//! Each invocation's metrics (CloudWatch embedded metric format, see
//! `alteryx_router_core::metrics`) are written to stdout once, from the invocation's summary or
//! the tracker's report, before the answer; logs go to stderr.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

use alteryx_router_core::config::{Mode, Settings};
use alteryx_router_core::metrics::Metrics;
use alteryx_router_core::router::Router;
use alteryx_router_core::tracker::Tracker;

// One event at a time per sandbox: a current-thread runtime starts no worker threads (each
// would also get its own malloc arena). CPU-heavy work (wasm plugins, SQLite) runs on tokio's
// blocking pool, which spawns threads only when used.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    alteryx_router_core::logging::init("info");
    let settings = Settings::from_env().map_err(|e| init_failed(&e))?;
    let metrics = Arc::new(settings.metrics());
    if settings.mode == Mode::Tracker {
        let tracker = Arc::new(settings.tracker().await.map_err(|e| init_failed(&e))?);
        return lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
            let tracker = Arc::clone(&tracker);
            let metrics = Arc::clone(&metrics);
            async move { track(&tracker, &metrics).await }
        }))
        .await;
    }
    let router = Arc::new(settings.router().await.map_err(|e| init_failed(&e))?);
    router.warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let router = Arc::clone(&router);
        let metrics = Arc::clone(&metrics);
        async move { route(&router, &metrics, event).await }
    }))
    .await
}

fn init_failed(e: &(dyn std::error::Error + 'static)) -> Error {
    let message = alteryx_router_core::error_chain(e);
    tracing::error!(error = %message, "router could not start");
    message.into()
}

async fn route(
    router: &Router,
    metrics: &Metrics,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let summary = router.handle_payload(&event.payload).await.map_err(|e| {
        let message = alteryx_router_core::error_chain(&e);
        tracing::error!(request_id = %event.context.request_id, error = %message, "invocation failed");
        Error::from(message)
    })?;
    // Whatever the answer, what was routed is counted (a redelivery counts again: as
    // duplicates, or as the jobs it submits).
    metrics.record_invocation(&summary);
    if summary.sqs {
        // Partial batch response: only the listed messages are redelivered.
        let failures: Vec<Value> = summary
            .failed_messages
            .iter()
            .map(|id| json!({ "itemIdentifier": id }))
            .collect();
        return Ok(json!({ "batchItemFailures": failures }));
    }
    if summary.needs_redelivery() {
        // The execution records already say ERROR (retryable); failing the invocation makes
        // Lambda/EventBridge deliver the event again, and after the retries, the DLQ keeps it.
        let counts = summary.counts();
        return Err(format!(
            "{} rule(s) failed with a retryable error and were recorded as ERROR; failing so the event is retried",
            counts.errors
        )
        .into());
    }
    Ok(serde_json::to_value(&summary)?)
}

async fn track(tracker: &Tracker, metrics: &Metrics) -> Result<Value, Error> {
    let report = tracker.run_once().await;
    metrics.record_tracker_pass(&report);
    Ok(serde_json::to_value(&report)?)
}
