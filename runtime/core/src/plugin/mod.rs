//! WebAssembly plugins: the types the router uses, the plugin stores ([`store`]) and what a
//! plugin may read of an object ([`objects`]). The sandboxed host itself is in [`host`].
//!
//! A plugin is a component implementing `plugins/wit/plugin.wit` (interface 0.3.0: a batch's
//! members and reads of them) or one of its predecessors, `plugins/wit/0.2.0/plugin.wit`
//! (ranged reads within a byte budget, a workflow chosen from the rule's allow-list) and
//! `plugins/wit/0.1.0/plugin.wit` (the head only); the host loads all three, and runs only
//! 0.3.0 plugins on batch rules ([`INTERFACE_VERSIONS`]). It is found by name in a
//! [`PluginStore`] (`PLUGIN_DIR`, `PLUGIN_S3_URI`) as `<name>.cwasm` (compiled ahead of time,
//! loaded without a compiler) or `<name>.wasm` (compiled on first use, then cached for the
//! life of the process). A rule may pin the file's SHA-256, and must for plugins from S3
//! (native code runs with the function's role); a different file is refused.

mod host;
pub(crate) mod objects;
mod store;

#[cfg(feature = "plugin-compiler")]
pub use host::check_component;
pub use host::{PluginHost, compile_to_cwasm, engine_config, is_precompiled};
pub use objects::{
    DirObjectReader, FileObjectReader, ObjectReader, ObjectVersion, READ_TIMEOUT, RangeRead,
    ReadError, S3ObjectReader, read_head,
};
pub use store::{
    ChainPluginStore, DirPluginStore, FilePluginStore, PluginBytes, PluginStore, S3PluginStore,
};

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::rules::PluginSpec;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The eager head (the rule's `read_bytes`), already read by the caller.
    pub head: &'a [u8],
    pub config_json: &'a str,
    /// The rule's own workflow: always allowed, listed first in the request's `workflows`.
    pub workflow: &'a str,
    /// Where `host.read-range` reads the object (pinned to the event's version).
    pub reader: Arc<dyn ObjectReader>,
    /// The batch this call closes, on rules with a `batch` block (`object` is then the member
    /// that closed it, and must be one of `members`); `None` for single objects. Only plugins
    /// built against an interface that knows batches (0.3.0) may run on batch rules; they read
    /// members with `host.read-member-range` through `reader`, pinned to each member's version.
    pub batch: Option<&'a BatchInput>,
}

/// A closed batch as a plugin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    /// The batch's id (`{batch.id}` in templates).
    pub id: String,
    /// The rule's `batch.by` value the members share (`{batch.group}`).
    pub group: String,
    /// The members, in the order they joined.
    pub members: Vec<crate::event::ObjectCreated>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PluginOutcome {
    /// Submit the rule's workflow with these values.
    Questions(Vec<(String, String)>),
    /// Submit `workflow` (one of the rule's allowed workflows) with these values.
    Workflow {
        workflow: String,
        questions: Vec<(String, String)>,
    },
    Skip(String),
}

/// One ranged read a plugin made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

/// One ranged read of a batch's member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRange {
    /// The member's index in the batch (join order).
    pub member: u32,
    pub offset: u64,
    pub length: u64,
}

/// What one plugin call read of the object (and of a batch's members): recorded on the execution and shown by
/// `plugin run`, so a plugin that reads megabytes where kilobytes do is visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStats {
    /// Bytes of the eager head (`read_bytes`, fewer for a smaller object).
    pub head_bytes: u64,
    /// The ranged reads of the object, in order (the first [`MAX_LISTED_READS`]; `range_reads`
    /// counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ByteRange>,
    /// The ranged reads of a batch's members (`host.read-member-range`, interface 0.3.0), in
    /// order (the first [`MAX_LISTED_READS`]; `range_reads` counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_ranges: Vec<MemberRange>,
    /// How many ranged reads the call made, of the object and of members.
    pub range_reads: u64,
    /// Bytes returned by ranged reads of the object and of members (what counts against the
    /// budget).
    pub range_bytes: u64,
    /// The call's budget for ranged reads.
    pub budget: u64,
}

impl ReadStats {
    /// Head and ranges together: what the call transferred from the object store.
    pub fn total_bytes(&self) -> u64 {
        self.head_bytes + self.range_bytes
    }
}

/// Ranged reads listed one by one in [`ReadStats::ranges`]; more are only counted.
pub const MAX_LISTED_READS: usize = 32;

#[derive(Debug, Clone)]
pub struct PluginRun {
    pub outcome: PluginOutcome,
    pub elapsed: Duration,
    /// Fuel burned by instantiation and the call, when [`PluginLimits::meter_fuel`] is on (the
    /// budget itself is wall-clock, enforced by epochs, which costs nothing per instruction).
    pub fuel_used: Option<u64>,
    /// The plugin's log lines and captured stdout/stderr, capped.
    pub logs: Vec<String>,
    /// What the call read of the object.
    pub reads: ReadStats,
    /// Which interface version the plugin implements (one of [`INTERFACE_VERSIONS`]).
    pub interface: &'static str,
}

/// The interface versions the host loads, newest first. Each loads on rules without a `batch`
/// block; only [`BATCH_INTERFACE_VERSIONS`] run on batch rules.
pub const INTERFACE_VERSIONS: [&str; 3] = ["0.3.0", "0.2.0", "0.1.0"];

/// The interface versions that can see a batch's members.
pub const BATCH_INTERFACE_VERSIONS: [&str; 1] = ["0.3.0"];

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}` not found in {location}")]
    NotFound { plugin: String, location: String },
    #[error(
        "plugin `{plugin}` (rule `{rule}`): sha256 is {actual}, but the rule pins {expected}; refusing to run it"
    )]
    ChecksumMismatch {
        plugin: String,
        rule: String,
        expected: String,
        actual: String,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) comes from {location}, whose plugins must be pinned: set the rule's plugin.sha256 (`alteryx-router plugin publish` uploads and pins in one step; PLUGIN_REQUIRE_PIN=false turns this off for local development)"
    )]
    PinRequired {
        plugin: String,
        rule: String,
        location: String,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) implements interface {interface}, which has no batches; a rule with a `batch` block needs a plugin built against alteryx-router:plugin@0.3.0 or later"
    )]
    NoBatchSupport {
        plugin: String,
        rule: String,
        interface: &'static str,
    },
    #[error("plugin `{plugin}` cannot be loaded: {message}")]
    Load { plugin: String, message: String },
    #[error(
        "plugin `{plugin}` implements none of alteryx-router:plugin@0.3.0, @0.2.0, @0.1.0 `router-plugin`: {message}"
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
    #[error(
        "plugin `{plugin}` (rule `{rule}`) asked to read {length} bytes at offset {offset}, beyond its read budget: {used} of {budget} bytes already read (plugin.read_budget_bytes)"
    )]
    OverBudget {
        plugin: String,
        rule: String,
        offset: u64,
        length: u64,
        used: u64,
        budget: u64,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) asked to read {length} bytes at offset {offset}, at or past the end of the {size}-byte object"
    )]
    PastEnd {
        plugin: String,
        rule: String,
        offset: u64,
        length: u64,
        size: u64,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) asked to read {length} bytes at offset {offset} of batch member {member} (`{key}`), beyond its read budget: {used} of {budget} bytes already read (plugin.read_budget_bytes, one budget for the whole batch)"
    )]
    MemberOverBudget {
        plugin: String,
        rule: String,
        member: u32,
        key: String,
        offset: u64,
        length: u64,
        used: u64,
        budget: u64,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) asked to read {length} bytes at offset {offset} of batch member {member} (`{key}`), at or past the end of the {size}-byte member"
    )]
    MemberPastEnd {
        plugin: String,
        rule: String,
        member: u32,
        key: String,
        offset: u64,
        length: u64,
        size: u64,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) asked to read batch member {member}, but the call has {members} member(s) (indexes 0 to {members} exclusive; none on a single object)"
    )]
    NoSuchMember {
        plugin: String,
        rule: String,
        member: u32,
        members: usize,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`): batch `{batch}` does not list the object that closed it, {uri}, among its {members} member(s)"
    )]
    ClosingMemberMissing {
        plugin: String,
        rule: String,
        batch: String,
        /// `s3://bucket/key` of the call's object.
        uri: String,
        members: usize,
    },
    #[error(
        "plugin `{plugin}` (rule `{rule}`) chose workflow `{workflow}`, which the rule does not allow (allowed: {})",
        allowed.join(", ")
    )]
    WorkflowNotAllowed {
        plugin: String,
        rule: String,
        workflow: String,
        allowed: Vec<String>,
    },
    /// Reading the object failed; see [`ReadError`] for what each cause means to the router.
    #[error("plugin `{plugin}` (rule `{rule}`)")]
    Read {
        plugin: String,
        rule: String,
        #[source]
        source: Box<ReadError>,
    },
    #[error("plugin `{plugin}`: {what}")]
    Io {
        plugin: String,
        what: String,
        #[source]
        source: BoxError,
    },
}

impl PluginError {
    /// Reading the plugin or the object can get better on its own; so can a pin mismatch,
    /// which is what a function sees while `plugin publish` has uploaded a plugin and its rule
    /// cache still holds the old pin (a tampered file stays refused through every retry and
    /// ends in the dead-letter queue).
    pub fn is_retryable(&self) -> bool {
        match self {
            PluginError::Io { .. } | PluginError::ChecksumMismatch { .. } => true,
            PluginError::Read { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// The object was deleted or overwritten since the event: nothing to route (`SKIPPED`).
    pub fn object_gone(&self) -> Option<&ReadError> {
        match self {
            PluginError::Read { source, .. } if source.is_gone() => Some(source),
            _ => None,
        }
    }
}
