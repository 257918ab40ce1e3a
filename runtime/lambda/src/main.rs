//! The Lambda function: `bootstrap` for the `provided.al2023` runtime.
//!
//! Everything expensive (AWS config, clients, the plugin engine, the rule cache) is created
//! once per cold start and shared by every invocation of the sandbox. `ROUTER_MODE=tracker`
//! turns the same binary into the scheduled job tracker, `ROUTER_MODE=rules` into the function
//! that republishes the rules snapshot when the rules table changes.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

use alteryx_router_core::config::{Mode, Settings};
use alteryx_router_core::router::Router;
use alteryx_router_core::tracker::Tracker;

// One event at a time per sandbox: a current-thread runtime starts no worker threads (each
// would also get its own malloc arena). CPU-heavy work (wasm plugins, SQLite) runs on tokio's
// blocking pool, which spawns threads only when used.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    alteryx_router_core::logging::init("info");
    let settings = Settings::from_env().map_err(|e| init_failed(&e))?;
    if settings.mode == Mode::Tracker {
        let tracker = Arc::new(settings.tracker().await.map_err(|e| init_failed(&e))?);
        return lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
            let tracker = Arc::clone(&tracker);
            async move { track(&tracker).await }
        }))
        .await;
    }
    if settings.mode == Mode::Rules {
        let publisher = Arc::new(
            settings
                .snapshot_publisher(true)
                .await
                .map_err(|e| init_failed(&e))?,
        );
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let publisher = Arc::clone(&publisher);
            async move {
                publisher.handle_event(&event.payload).await.map_err(|e| {
                    let message = alteryx_router_core::error_chain(&e);
                    tracing::error!(error = %message, "rules snapshot not published; the stream batch is retried");
                    Error::from(message)
                })
            }
        }))
        .await;
    }
    let router = Arc::new(settings.router().await.map_err(|e| init_failed(&e))?);
    router.warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let router = Arc::clone(&router);
        async move { route(&router, event).await }
    }))
    .await
}

fn init_failed(e: &(dyn std::error::Error + 'static)) -> Error {
    let message = alteryx_router_core::error_chain(e);
    tracing::error!(error = %message, "router could not start");
    message.into()
}

async fn route(router: &Router, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let summary = router.handle_payload(&event.payload).await.map_err(|e| {
        let message = alteryx_router_core::error_chain(&e);
        tracing::error!(request_id = %event.context.request_id, error = %message, "invocation failed");
        Error::from(message)
    })?;
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

async fn track(tracker: &Tracker) -> Result<Value, Error> {
    let report = tracker.run_once().await;
    Ok(serde_json::to_value(&report)?)
}
