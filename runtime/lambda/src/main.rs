//! The Lambda function: `bootstrap` for the `provided.al2023` runtime.
//!
//! Everything expensive (AWS config, clients, the plugin engine, the rule cache) is created
//! once per cold start and shared by every invocation of the sandbox. `ROUTER_MODE=tracker`
//! turns the same binary into the scheduled job tracker, `ROUTER_MODE=rules` into the function
//! that republishes the rules snapshot when the rules table changes.
//!
//! Each invocation is routed by the deadline of its Lambda context, so claims end with the
//! invocation and no job request starts that could not be recorded in time. A failed
//! invocation reports a meaningful `errorType` (`OutcomeUnknown`, `RetryableFailure`,
//! `ExecutionInProgress`, `MalformedRecords`, `MalformedEvent`, `RulesUnavailable`,
//! `ExecutionStoreError`), which CloudWatch and the dead-letter queue show.
//!
//! Each invocation's metrics (CloudWatch embedded metric format, see
//! `alteryx_router_core::metrics`) are written to stdout once, from the invocation's summary or
//! the tracker's report, before the answer; logs go to stderr.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

use alteryx_router_core::config::{Mode, Settings};
use alteryx_router_core::metrics::Metrics;
use alteryx_router_core::router::{Deadline, Router};
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
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let tracker = Arc::clone(&tracker);
            let metrics = Arc::clone(&metrics);
            async move { track(&tracker, &metrics, &event.context).await }
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
) -> Result<Value, Diagnostic> {
    let request_id = event.context.request_id.clone();
    let deadline = Deadline::at_system_time(event.context.deadline());
    let summary = router
        .handle_payload_until(&event.payload, deadline)
        .await
        .map_err(|e| {
            let message = alteryx_router_core::error_chain(&e);
            tracing::error!(%request_id, error_type = e.error_type(), error = %message, "invocation failed");
            Diagnostic {
                error_type: e.error_type().to_string(),
                error_message: message,
            }
        })?;
    // Whatever the answer, what was routed is counted (a redelivery counts again: as
    // duplicates, in progress, or as the jobs it submits).
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
    if let Some(failure) = summary.failure() {
        // What a redelivery may fix is already recorded; failing the invocation makes Lambda
        // or EventBridge deliver the event again, and after the retries the DLQ keeps it.
        tracing::warn!(%request_id, error_type = failure.error_type, error = %failure.message,
            "invocation fails so the event is delivered again");
        return Err(Diagnostic {
            error_type: failure.error_type.to_string(),
            error_message: failure.message,
        });
    }
    serde_json::to_value(&summary).map_err(|e| Diagnostic {
        error_type: "EncodingError".into(),
        error_message: e.to_string(),
    })
}

/// The invocation's passes (one, or more with `TRACK_REPEAT_SECONDS` while a line waits),
/// each pass's metrics written as it ends; the answer is the last pass's report and how many
/// passes there were.
async fn track(
    tracker: &Tracker,
    metrics: &Metrics,
    context: &lambda_runtime::Context,
) -> Result<Value, Error> {
    let until = Deadline::at_system_time(context.deadline()).instant();
    let (report, passes) = tracker
        .run_passes(until, |report| metrics.record_tracker_pass(report))
        .await;
    let mut answer = serde_json::to_value(&report)?;
    if let Some(object) = answer.as_object_mut() {
        object.insert("passes".into(), json!(passes));
    }
    Ok(answer)
}
