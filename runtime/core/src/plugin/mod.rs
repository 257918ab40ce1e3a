//! WebAssembly plugins: the types the router uses, the plugin stores, and the readers that
//! fetch the start of an object. The sandboxed host itself is in [`host`].
//!
//! A plugin is a component implementing `plugins/wit/plugin.wit`. It is found by name in a
//! [`PluginStore`] (`PLUGIN_DIR`, `PLUGIN_S3_URI`) as `<name>.cwasm` (compiled ahead of time,
//! loaded without a compiler) or `<name>.wasm` (compiled on first use, then cached for the
//! life of the process). A rule may pin the file's SHA-256; a different file is refused.

mod host;
mod store;

pub use host::{PluginHost, compile_to_cwasm, engine_config};
pub use store::{
    ChainPluginStore, DirObjectReader, DirPluginStore, FilePluginStore, ObjectReader, PluginBytes,
    PluginStore, S3ObjectReader, S3PluginStore,
};

use std::time::Duration;

pub use crate::rules::PluginSpec;

/// Limits every plugin call runs under; a rule may lower or raise `timeout` and memory.
#[derive(Clone, Debug)]
pub struct PluginLimits {
    /// Wall-clock budget of one call (instantiation included), enforced by epoch interruption.
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub max_questions: usize,
    pub max_value_len: usize,
    pub max_log_bytes: usize,
    /// Count the fuel (roughly, wasm instructions) each call burns, reported in
    /// [`PluginRun::fuel_used`]. For `plugin run`: metering costs time on every instruction, and
    /// a `.cwasm` built for the unmetered engine does not load into a metered one.
    pub meter_fuel: bool,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_questions: 64,
            max_value_len: 8 << 10,
            max_log_bytes: 16 << 10,
            meter_fuel: false,
        }
    }
}

/// One call's input.
pub struct PluginInput<'a> {
    pub rule_id: &'a str,
    pub object: &'a crate::event::ObjectCreated,
    pub content_type: Option<&'a str>,
    pub head: &'a [u8],
    pub config_json: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PluginOutcome {
    Questions(Vec<(String, String)>),
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct PluginRun {
    pub outcome: PluginOutcome,
    pub elapsed: Duration,
    /// Fuel burned by instantiation and the call, when [`PluginLimits::meter_fuel`] is on (the
    /// budget itself is wall-clock, enforced by epochs, which costs nothing per instruction).
    pub fuel_used: Option<u64>,
    /// The plugin's log lines and captured stdout/stderr, capped.
    pub logs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}` not found in {location}")]
    NotFound { plugin: String, location: String },
    #[error(
        "plugin `{plugin}`: sha256 is {actual}, but the rule pins {expected}; refusing to run it"
    )]
    ChecksumMismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("plugin `{plugin}` cannot be loaded: {message}")]
    Load { plugin: String, message: String },
    #[error(
        "plugin `{plugin}` does not implement alteryx-router:plugin@0.1.0 `router-plugin`: {message}"
    )]
    Incompatible { plugin: String, message: String },
    #[error("plugin `{plugin}` (rule `{rule}`) trapped: {message}")]
    Trap {
        plugin: String,
        rule: String,
        message: String,
    },
    #[error("plugin `{plugin}` (rule `{rule}`) ran out of time (limit {limit:?})")]
    Timeout {
        plugin: String,
        rule: String,
        limit: Duration,
    },
    #[error("plugin `{plugin}` (rule `{rule}`) hit its memory limit of {limit} bytes")]
    MemoryLimit {
        plugin: String,
        rule: String,
        limit: usize,
    },
    #[error("plugin `{plugin}` (rule `{rule}`) returned too much: {message}")]
    OutputTooLarge {
        plugin: String,
        rule: String,
        message: String,
    },
    #[error("plugin `{plugin}` (rule `{rule}`) reported an error: {message}")]
    PluginReported {
        plugin: String,
        rule: String,
        message: String,
    },
    #[error("plugin `{plugin}`: {message}")]
    Io { plugin: String, message: String },
}

impl PluginError {
    /// Only reading the plugin or the object can get better on its own.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PluginError::Io { .. })
    }
}
