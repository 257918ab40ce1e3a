//! alteryx-router: routes S3 "Object Created" events to Alteryx Server workflows.
//!
//! The pipeline, one module per stage (see `DESIGN.md`):
//!
//! 1. [`event`] decodes EventBridge / S3 / SQS / SNS inputs into [`event::ObjectCreated`];
//! 2. [`rules`] holds the rule model, its validation, the glob matcher and the rule stores;
//! 3. [`template`] renders question values from an object's facts, [`plugin`] runs an optional
//!    WebAssembly component over the start of the object;
//! 4. [`executions`] claims one execution per (rule, object version) so duplicates are skipped;
//! 5. [`alteryx`] submits the job to Alteryx Server (v1 OAuth1 or v3 OAuth2), with credentials
//!    from [`secrets`];
//! 6. [`router`] ties the stages together; [`tracker`] later records each job's outcome.
//!
//! [`tls`] holds the trusted roots every HTTPS client shares; [`emulator`] is a local Alteryx Server used by tests and `alteryx-router demo`.

pub mod alteryx;
pub mod aws;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod event;
pub mod executions;
pub mod logging;
pub mod plugin;
pub mod router;
pub mod rules;
pub mod secrets;
pub mod tables;
pub mod template;
pub mod tls;
pub mod tracker;
