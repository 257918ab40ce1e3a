//! The sandboxed plugin host (wasmtime, Component Model).
//!
//! One `Engine` per process; each loaded plugin is compiled (or deserialized) once and
//! pre-linked; every call gets a fresh `Store` and instance, so nothing leaks from one object
//! to the next. Three interface versions are hosted side by side: `0.3.0` (a batch's members,
//! read with `read-member-range`), `0.2.0` (ranged reads, a workflow choice) and `0.1.0` (the
//! head only); which one a plugin implements is found when it is loaded, from the type of its
//! `route` export. Only 0.3.0 runs on batch rules: the older ones cannot be shown the members.
//! Limits are enforced by the engine, not by trust:
//! - time: epoch interruption with a ticker thread (a deadline costs nothing per instruction,
//!   unlike fuel, and bounds instantiation too); time spent waiting for the plugin's ranged
//!   reads is given back, so a slow S3 answer is not charged to the plugin's compute;
//! - memory, tables and instances: a `ResourceLimiter` that also remembers when it refused;
//! - reads: a byte budget per call (one for the object and all members of a batch) and the
//!   size of what is read, checked before any request;
//! - output: number and length of question values, log volume, the workflow allow-list.
//!
//! Capabilities: the WASI imports toolchains such as componentize-py need, with no
//! preopened directories, no environment, no arguments, no network (TCP, UDP and name lookup
//! off, every socket address refused) and stdout/stderr captured into the call's log; and
//! `read-range` over the one object being routed (and `read-member-range` over the members of
//! the batch being closed, each pinned to the version that joined). Calls run on tokio's
//! blocking pool: wasm is CPU-bound and must not stall the event loop (a ranged read blocks
//! that thread on the runtime, which is allowed there).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::objects::check_length;
use super::{
    BATCH_INTERFACE_VERSIONS, BatchInput, ByteRange, MAX_LISTED_READS, MemberRange, ObjectReader,
    ObjectVersion, PluginError, PluginInput, PluginLimits, PluginOutcome, PluginRun, PluginSpec,
    PluginStore, ReadStats,
};

/// Bindings of interface 0.1.0 (`plugins/wit/0.1.0`): the head only.
mod v1 {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit/0.1.0",
        world: "router-plugin",
    });
}

/// Bindings of interface 0.2.0 (`plugins/wit/0.2.0`): ranged reads and a workflow choice.
mod v2 {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit/0.2.0",
        world: "router-plugin",
        imports: { "alteryx-router:plugin/host.read-range": trappable },
    });
}

/// Bindings of interface 0.3.0 (`plugins/wit`): a batch's members and reads of them.
mod v3 {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "router-plugin",
        imports: {
            "alteryx-router:plugin/host.read-range": trappable,
            "alteryx-router:plugin/host.read-member-range": trappable,
        },
    });
}

/// Epoch tick; deadlines are rounded up to it.
const TICK: Duration = Duration::from_millis(5);

/// The engine configuration shared by the host and `plugin compile`; a `.cwasm` only loads
/// into an engine with the same settings.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: CallLimiter,
    logs: Vec<String>,
    log_bytes: usize,
    max_log_bytes: usize,
    reads: RangeSession,
    started: Instant,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    fn log_line(&mut self, level: &str, message: String) {
        let line: String = message.chars().take(1024).collect();
        push_log(
            &mut self.logs,
            &mut self.log_bytes,
            self.max_log_bytes,
            format!("{level}: {line}"),
        );
    }
}

// The `types` interfaces have no functions; their host traits are empty.
impl v1::alteryx_router::plugin::types::Host for CallState {}
impl v2::alteryx_router::plugin::types::Host for CallState {}
impl v3::alteryx_router::plugin::types::Host for CallState {}

impl v1::alteryx_router::plugin::host::Host for CallState {
    fn log(&mut self, level: v1::alteryx_router::plugin::host::Level, message: String) {
        use v1::alteryx_router::plugin::host::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message);
    }
}

impl v2::alteryx_router::plugin::host::Host for CallState {
    fn log(&mut self, level: v2::alteryx_router::plugin::host::Level, message: String) {
        use v2::alteryx_router::plugin::host::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message);
    }

    fn read_range(&mut self, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        self.reads.read(None, offset, length)
    }
}

impl v3::alteryx_router::plugin::host::Host for CallState {
    fn log(&mut self, level: v3::alteryx_router::plugin::host::Level, message: String) {
        use v3::alteryx_router::plugin::host::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message);
    }

    fn read_range(&mut self, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        self.reads.read(None, offset, length)
    }

    fn read_member_range(
        &mut self,
        member: u32,
        offset: u64,
        length: u64,
    ) -> wasmtime::Result<Vec<u8>> {
        self.reads.read(Some(member), offset, length)
    }
}

/// A call's ranged reads: the object (and a batch's members), the budget they share, what was
/// read, and why a read ended the call (the typed error the router records, rather than the
/// trap that carried it out).
struct RangeSession {
    reader: Arc<dyn ObjectReader>,
    object: ObjectVersion,
    /// A batch's members in join order, each pinned to the version that joined (empty for a
    /// single object).
    members: Vec<ObjectVersion>,
    runtime: tokio::runtime::Handle,
    plugin: String,
    rule: String,
    stats: ReadStats,
    /// Time spent waiting for the object store: not charged to the plugin's time limit.
    waited: Duration,
    fault: Option<PluginError>,
}

impl RangeSession {
    /// Read of the object (`member` `None`) or of one member of the batch.
    fn read(&mut self, member: Option<u32>, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        let target = match member {
            None => &self.object,
            Some(index) => match self.members.get(index as usize) {
                Some(target) => target,
                None => {
                    return Err(self.end_call(PluginError::NoSuchMember {
                        plugin: self.plugin.clone(),
                        rule: self.rule.clone(),
                        member: index,
                        members: self.members.len(),
                    }));
                }
            },
        };
        if length == 0 {
            return Ok(Vec::new());
        }
        let (plugin, rule) = (self.plugin.clone(), self.rule.clone());
        let size = target.size;
        if offset >= size {
            let fault = match member {
                None => PluginError::PastEnd {
                    plugin,
                    rule,
                    offset,
                    length,
                    size,
                },
                Some(member) => PluginError::MemberPastEnd {
                    plugin,
                    rule,
                    member,
                    key: target.key.clone(),
                    offset,
                    length,
                    size,
                },
            };
            return Err(self.end_call(fault));
        }
        let length = length.min(size - offset);
        let (used, budget) = (self.stats.range_bytes, self.stats.budget);
        if used + length > budget {
            let fault = match member {
                None => PluginError::OverBudget {
                    plugin,
                    rule,
                    offset,
                    length,
                    used,
                    budget,
                },
                Some(member) => PluginError::MemberOverBudget {
                    plugin,
                    rule,
                    member,
                    key: target.key.clone(),
                    offset,
                    length,
                    used,
                    budget,
                },
            };
            return Err(self.end_call(fault));
        }
        let target = target.clone();
        let started = Instant::now();
        let read = self
            .runtime
            .block_on(self.reader.read_range(&target, offset, length))
            .and_then(|read| check_length(&target, offset, length, read));
        self.waited += started.elapsed();
        match read {
            Ok(read) => {
                self.stats.range_reads += 1;
                self.stats.range_bytes += length;
                match member {
                    None if self.stats.ranges.len() < MAX_LISTED_READS => {
                        self.stats.ranges.push(ByteRange { offset, length });
                    }
                    Some(member) if self.stats.member_ranges.len() < MAX_LISTED_READS => {
                        self.stats.member_ranges.push(MemberRange {
                            member,
                            offset,
                            length,
                        });
                    }
                    _ => {}
                }
                let mut bytes = read.bytes;
                bytes.truncate(length as usize);
                Ok(bytes)
            }
            Err(source) => Err(self.end_call(PluginError::Read {
                plugin,
                rule,
                source: Box::new(source),
            })),
        }
    }

    /// Remember why the call ends and make the trap that ends it.
    fn end_call(&mut self, fault: PluginError) -> wasmtime::Error {
        let trap = wasmtime::Error::msg(fault.to_string());
        self.fault = Some(fault);
        trap
    }
}

fn push_log(logs: &mut Vec<String>, used: &mut usize, max: usize, line: String) {
    if *used >= max {
        return;
    }
    *used += line.len();
    if *used >= max {
        logs.push("(log truncated: limit reached)".into());
    } else {
        logs.push(line);
    }
}

/// Memory/table/instance limits that remember whether they refused something.
struct CallLimiter {
    memory_bytes: usize,
    refused_memory: bool,
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        if !ok {
            self.refused_memory = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// A plugin pre-linked for the interface version it implements.
enum Prepared {
    V3(v3::RouterPluginPre<CallState>),
    V2(v2::RouterPluginPre<CallState>),
    V1(v1::RouterPluginPre<CallState>),
}

type Loaded = Arc<Prepared>;

/// A loaded plugin and what it was loaded from.
struct Cached {
    /// `None` when the bytes were refused by a rule's pin and so never deserialized: a
    /// tampered `.cwasm` must not reach `Component::deserialize`.
    pre: Option<Loaded>,
    /// sha256 of the bytes it was loaded from (what a rule's `sha256` pin is compared with).
    digest: String,
    /// The store's version token when it was fetched (`None`: the store cannot tell).
    version: Option<String>,
    /// Where it came from, and whether a rule must pin it to run it.
    location: String,
    pin_required: bool,
    checked: Instant,
}

/// How long a loaded plugin is used without asking its store whether it changed.
pub const DEFAULT_PLUGIN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Runs plugins. Share one per process.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    store: Arc<dyn PluginStore>,
    limits: PluginLimits,
    loaded: Mutex<HashMap<String, Cached>>,
    cache_ttl: Duration,
    _ticker: Arc<Ticker>,
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn load_error(plugin: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::Load {
        plugin: plugin.to_string(),
        message: e.to_string(),
    }
}

impl PluginHost {
    pub fn new(store: Arc<dyn PluginStore>, limits: PluginLimits) -> Result<Self, PluginError> {
        let mut config = engine_config();
        config.consume_fuel(limits.meter_fuel);
        let engine = Engine::new(&config).map_err(|e| load_error("(engine)", e))?;
        let linker = plugin_linker(&engine)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| load_error("(epoch ticker)", e))?;
        }
        Ok(Self {
            engine,
            linker,
            store,
            limits,
            loaded: Mutex::new(HashMap::new()),
            cache_ttl: DEFAULT_PLUGIN_CACHE_TTL,
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    /// How long a loaded plugin is used before its store is asked (cheaply: a HEAD request or
    /// a file's metadata) whether it changed; only a changed plugin is downloaded again.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The loaded plugin for a rule, refusing one whose hash differs from the rule's pin, or
    /// that needs a pin the rule does not give.
    ///
    /// A plugin is downloaded, hashed and compiled or deserialized once; afterwards its store is
    /// asked at most every `cache_ttl` for a version token, and it is fetched again only when
    /// that changed. (Fetching on every call downloaded a 35 MB `.cwasm` from S3 per object.)
    /// A rule whose pin differs from the loaded file asks the store at once: the pin may be
    /// newer than the cache (`plugin publish` uploads, then pins).
    async fn load(&self, spec: &PluginSpec, rule: &str) -> Result<Loaded, PluginError> {
        let known_version = {
            let cache = self.cache()?;
            match cache.get(&spec.name) {
                Some(entry) if entry.checked.elapsed() < self.cache_ttl => {
                    match check_pin(spec, rule, entry) {
                        Ok(()) => match &entry.pre {
                            Some(pre) => return Ok(Arc::clone(pre)),
                            None => entry.version.clone(),
                        },
                        Err(e @ PluginError::PinRequired { .. }) => return Err(e),
                        Err(_) => entry.version.clone(),
                    }
                }
                Some(entry) => entry.version.clone(),
                None => None,
            }
        };
        // Ask for the version before fetching: if the file changes in between, the next check
        // sees a newer token than the one stored and fetches again.
        let version = self.store.version(&spec.name).await?;
        if version.is_some() && version == known_version {
            let mut cache = self.cache()?;
            if let Some(entry) = cache.get_mut(&spec.name) {
                entry.checked = Instant::now();
                check_pin(spec, rule, entry)?;
                if let Some(pre) = &entry.pre {
                    return Ok(Arc::clone(pre));
                }
            }
        }
        let fetched = self.store.fetch(&spec.name).await?;
        let mut entry = Cached {
            pre: None,
            digest: hex::encode(Sha256::digest(&fetched.bytes)),
            version,
            location: fetched.location.clone(),
            pin_required: fetched.pin_required,
            checked: Instant::now(),
        };
        if let Err(refused) = check_pin(spec, rule, &entry) {
            // Remember what the store holds, so this rule's next objects are refused without
            // downloading it again.
            self.cache()?.insert(spec.name.clone(), entry);
            return Err(refused);
        }
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let name = spec.name.clone();
        let started = Instant::now();
        let pre =
            tokio::task::spawn_blocking(move || prepare(&engine, &linker, &name, &fetched.bytes))
                .await
                .map_err(|e| load_error(&spec.name, e))??;
        tracing::info!(plugin = %spec.name, location = %entry.location, sha256 = %entry.digest,
            interface = pre.interface(), elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded");
        let pre = Arc::new(pre);
        entry.pre = Some(Arc::clone(&pre));
        self.cache()?.insert(spec.name.clone(), entry);
        Ok(pre)
    }

    fn cache(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Cached>>, PluginError> {
        self.loaded
            .lock()
            .map_err(|_| load_error("(cache)", "plugin cache lock poisoned"))
    }

    /// Run a rule's plugin over one object, or over the batch it closes (`input.batch`; only
    /// plugins of [`BATCH_INTERFACE_VERSIONS`] may, the others are refused with
    /// [`PluginError::NoBatchSupport`]).
    pub async fn run(
        &self,
        spec: &PluginSpec,
        input: PluginInput<'_>,
    ) -> Result<PluginRun, PluginError> {
        let pre = self.load(spec, input.rule_id).await?;
        let batch = match input.batch {
            None => None,
            // Neither 0.1.0 nor 0.2.0 can be told about a batch's members; running one on a
            // batch would show it a single object and let it decide for the whole set.
            Some(_) if !BATCH_INTERFACE_VERSIONS.contains(&pre.interface()) => {
                return Err(PluginError::NoBatchSupport {
                    plugin: spec.name.clone(),
                    rule: input.rule_id.to_string(),
                    interface: pre.interface(),
                });
            }
            Some(batch) => Some((batch.clone(), closing_member(spec, &input, batch)?)),
        };
        let members = batch
            .as_ref()
            .map(|(b, _)| b.members.iter().map(ObjectVersion::of).collect())
            .unwrap_or_default();
        let mut limits = self.limits.clone();
        if let Some(ms) = spec.timeout_ms {
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = spec.memory_mb {
            limits.memory_bytes = (mb as usize) << 20;
        }
        let mut workflows = vec![input.workflow.to_string()];
        for w in &spec.workflows {
            if !workflows.contains(w) {
                workflows.push(w.clone());
            }
        }
        let request = CallRequest {
            object: input.object.clone(),
            content_type: input.content_type.map(str::to_string),
            head: input.head.to_vec(),
            config: input.config_json.to_string(),
            rule_id: input.rule_id.to_string(),
            workflows,
            batch,
        };
        let reads = RangeSession {
            reader: input.reader,
            object: ObjectVersion::of(input.object),
            members,
            runtime: tokio::runtime::Handle::current(),
            plugin: spec.name.clone(),
            rule: input.rule_id.to_string(),
            stats: ReadStats {
                head_bytes: input.head.len() as u64,
                budget: spec.read_budget(),
                ..ReadStats::default()
            },
            waited: Duration::ZERO,
            fault: None,
        };
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || call(&engine, &pre, request, reads, &limits))
            .await
            .map_err(|e| PluginError::Trap {
                plugin: spec.name.clone(),
                rule: input.rule_id.to_string(),
                message: format!("host task failed: {e}"),
            })?
    }
}

/// The index of the call's object among the batch's members (the same bucket, key, version id
/// and ETag): the member a 0.3.0 plugin is told closed the batch.
fn closing_member(
    spec: &PluginSpec,
    input: &PluginInput<'_>,
    batch: &BatchInput,
) -> Result<u32, PluginError> {
    let object = ObjectVersion::of(input.object);
    batch
        .members
        .iter()
        .rposition(|m| ObjectVersion::of(m) == object)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| PluginError::ClosingMemberMissing {
            plugin: spec.name.clone(),
            rule: input.rule_id.to_string(),
            batch: batch.id.clone(),
            uri: format!("s3://{}/{}", input.object.bucket, input.object.key),
            members: batch.members.len(),
        })
}

/// WASI and every interface version's imports: 0.x versions are not semver-compatible with
/// each other, so a plugin links against exactly the one it was built for.
fn plugin_linker(engine: &Engine) -> Result<Linker<CallState>, PluginError> {
    let mut linker = Linker::<CallState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| load_error("(linker)", e))?;
    v3::RouterPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
        .map_err(|e| load_error("(linker)", e))?;
    v2::RouterPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
        .map_err(|e| load_error("(linker)", e))?;
    v1::RouterPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
        .map_err(|e| load_error("(linker)", e))?;
    Ok(linker)
}

/// A rule may pin its plugin's sha256, and must where the store requires it; anything else
/// is refused.
fn check_pin(spec: &PluginSpec, rule: &str, loaded: &Cached) -> Result<(), PluginError> {
    match &spec.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&loaded.digest) => {
            Err(PluginError::ChecksumMismatch {
                plugin: spec.name.clone(),
                rule: rule.to_string(),
                expected: expected.to_ascii_lowercase(),
                actual: loaded.digest.clone(),
            })
        }
        None if loaded.pin_required => Err(PluginError::PinRequired {
            plugin: spec.name.clone(),
            rule: rule.to_string(),
            location: loaded.location.clone(),
        }),
        _ => Ok(()),
    }
}

impl Prepared {
    fn interface(&self) -> &'static str {
        match self {
            Prepared::V3(_) => "0.3.0",
            Prepared::V2(_) => "0.2.0",
            Prepared::V1(_) => "0.1.0",
        }
    }
}

/// Compile or deserialize a plugin and pre-link it for the interface version it implements.
fn prepare(
    engine: &Engine,
    linker: &Linker<CallState>,
    name: &str,
    bytes: &[u8],
) -> Result<Prepared, PluginError> {
    let component = match Engine::detect_precompiled(bytes) {
        Some(wasmtime::Precompiled::Component) => deserialize(engine, name, bytes)?,
        Some(wasmtime::Precompiled::Module) => {
            return Err(load_error(name, "this .cwasm is a precompiled core module, not a component"));
        }
        #[cfg(not(feature = "plugin-compiler"))]
        None => {
            return Err(load_error(
                name,
                "this build loads only precompiled plugins (.cwasm); compile it with `alteryx-router plugin compile`",
            ));
        }
        #[cfg(feature = "plugin-compiler")]
        None => Component::new(engine, bytes).map_err(|e| {
            load_error(name, format!("not a WebAssembly component (build it with a component toolchain, e.g. componentize-py): {e:#}"))
        })?,
    };
    let incompatible = |message: String| PluginError::Incompatible {
        plugin: name.to_string(),
        message,
    };
    let instance_pre: InstancePre<CallState> = linker
        .instantiate_pre(&component)
        .map_err(|e| incompatible(format!("{e:#}")))?;
    // The `route` export's type tells the versions apart (its request record differs).
    let v3_error = match v3::RouterPluginPre::new(instance_pre.clone()) {
        Ok(pre) => return Ok(Prepared::V3(pre)),
        Err(e) => e,
    };
    let v2_error = match v2::RouterPluginPre::new(instance_pre.clone()) {
        Ok(pre) => return Ok(Prepared::V2(pre)),
        Err(e) => e,
    };
    match v1::RouterPluginPre::new(instance_pre) {
        Ok(pre) => Ok(Prepared::V1(pre)),
        Err(v1_error) => Err(incompatible(format!(
            "as 0.3.0: {v3_error:#}; as 0.2.0: {v2_error:#}; as 0.1.0: {v1_error:#}"
        ))),
    }
}

/// Load a `.cwasm`. Wasmtime refuses artifacts from another version or configuration, or for
/// another CPU, with an error we pass on.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    // SAFETY: `Component::deserialize` trusts the bytes to be wasmtime's own compiled output.
    // They come from the operator's plugin store (a directory, or a bucket whose plugins
    // must match the sha256 pinned in the rule, checked before this call), never from an
    // uploaded object; wasmtime still checks the version, configuration and target.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| {
        load_error(
            name,
            format!("precompiled .cwasm does not fit this host (built by another wasmtime version, with other settings or for another CPU?); recompile it with `alteryx-router plugin compile`: {e:#}"),
        )
    })
}

/// Everything a call hands the plugin, before it is shaped for the plugin's version.
struct CallRequest {
    object: crate::event::ObjectCreated,
    content_type: Option<String>,
    head: Vec<u8>,
    config: String,
    rule_id: String,
    /// The rule's workflow first, then the allowed alternatives.
    workflows: Vec<String>,
    /// The batch the call closes, and the index of `object` among its members.
    batch: Option<(BatchInput, u32)>,
}

/// Epoch ticks until `left` has passed (at least one).
fn ticks_for(left: Duration) -> u64 {
    (left.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// What the plugin answered, before validation: values, a workflow choice, or a skip.
enum Answer {
    Values(Option<String>, Vec<(String, String)>),
    Skip(String),
}

fn call(
    engine: &Engine,
    pre: &Prepared,
    request: CallRequest,
    reads: RangeSession,
    limits: &PluginLimits,
) -> Result<PluginRun, PluginError> {
    let started = Instant::now();
    let (plugin, rule) = (reads.plugin.clone(), reads.rule.clone());
    let budget = reads.stats.budget;
    let stdout = MemoryOutputPipe::new(limits.max_log_bytes);
    let stderr = MemoryOutputPipe::new(limits.max_log_bytes);
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build();
    let mut store = Store::new(
        engine,
        CallState {
            wasi,
            table: ResourceTable::new(),
            limits: CallLimiter {
                memory_bytes: limits.memory_bytes,
                refused_memory: false,
            },
            logs: Vec::new(),
            log_bytes: 0,
            max_log_bytes: limits.max_log_bytes,
            reads,
            started,
        },
    );
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(ticks_for(limits.timeout));
    // At each deadline: the call's time so far, minus what it spent waiting for reads, against
    // its limit.
    let timeout = limits.timeout;
    store.epoch_deadline_callback(move |ctx| {
        let state = ctx.data();
        let spent = state.started.elapsed().saturating_sub(state.reads.waited);
        Ok(if spent >= timeout {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(ticks_for(timeout - spent))
        })
    });
    if limits.meter_fuel {
        // Metering only: the limit stays the epoch deadline.
        store
            .set_fuel(u64::MAX)
            .map_err(|e| load_error(&plugin, format!("{e:#}")))?;
    }

    let interface = pre.interface();
    let workflows = request.workflows.clone();
    let result = match pre {
        Prepared::V3(pre) => {
            let request = v3_request(request, budget);
            pre.instantiate(&mut store)
                .and_then(|instance| instance.call_route(&mut store, &request))
                .map(|answer| answer.map(v3_answer))
        }
        Prepared::V2(pre) => {
            let request = v2_request(request, budget);
            pre.instantiate(&mut store)
                .and_then(|instance| instance.call_route(&mut store, &request))
                .map(|answer| answer.map(v2_answer))
        }
        Prepared::V1(pre) => {
            let request = v1_request(request);
            pre.instantiate(&mut store)
                .and_then(|instance| instance.call_route(&mut store, &request))
                .map(|answer| answer.map(v1_answer))
        }
    };

    let state = store.data_mut();
    let mut logs = std::mem::take(&mut state.logs);
    let mut used = state.log_bytes;
    for (stream, pipe) in [("stdout", &stdout), ("stderr", &stderr)] {
        let text = String::from_utf8_lossy(&pipe.contents()).into_owned();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            push_log(
                &mut logs,
                &mut used,
                limits.max_log_bytes,
                format!("{stream}: {line}"),
            );
        }
    }
    let refused_memory = state.limits.refused_memory;
    let read_fault = state.reads.fault.take();
    let stats = std::mem::take(&mut state.reads.stats);
    let fuel_used = if limits.meter_fuel {
        store.get_fuel().ok().map(|left| u64::MAX - left)
    } else {
        None
    };
    let answer = match result {
        Err(e) => {
            // A refused read ended the call: that, not the trap carrying it, is the cause.
            if let Some(fault) = read_fault {
                return Err(fault);
            }
            let trap = e.downcast_ref::<Trap>().copied();
            return Err(if trap == Some(Trap::Interrupt) {
                PluginError::Timeout {
                    plugin,
                    rule,
                    limit: limits.timeout,
                }
            } else if refused_memory {
                PluginError::MemoryLimit {
                    plugin,
                    rule,
                    limit: limits.memory_bytes,
                }
            } else {
                // The first line of the trap plus the plugin's own last words (a Python
                // traceback, a Rust panic message) say more than wasm frames.
                let mut message = e.root_cause().to_string();
                let tail: Vec<&str> = logs.iter().rev().take(8).map(String::as_str).collect();
                if !tail.is_empty() {
                    message.push_str("; plugin output: ");
                    message.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
                }
                PluginError::Trap {
                    plugin,
                    rule,
                    message,
                }
            });
        }
        Ok(Err(message)) => {
            if refused_memory {
                return Err(PluginError::MemoryLimit {
                    plugin,
                    rule,
                    limit: limits.memory_bytes,
                });
            }
            return Err(PluginError::PluginReported {
                plugin,
                rule,
                message: message.chars().take(2000).collect(),
            });
        }
        Ok(Ok(answer)) => answer,
    };
    let outcome = match answer {
        Answer::Skip(reason) => PluginOutcome::Skip(reason.chars().take(2000).collect()),
        Answer::Values(workflow, values) => {
            let questions = checked_values(values, limits, &plugin, &rule)?;
            match workflow {
                None => PluginOutcome::Questions(questions),
                Some(workflow) if workflows.contains(&workflow) => PluginOutcome::Workflow {
                    workflow,
                    questions,
                },
                Some(workflow) => {
                    return Err(PluginError::WorkflowNotAllowed {
                        plugin,
                        rule,
                        workflow: workflow.chars().take(256).collect(),
                        allowed: workflows,
                    });
                }
            }
        }
    };
    Ok(PluginRun {
        outcome,
        elapsed: started.elapsed(),
        fuel_used,
        logs,
        reads: stats,
        interface,
    })
}

fn v1_request(r: CallRequest) -> v1::Request {
    use v1::alteryx_router::plugin::types::ObjectFacts;
    v1::Request {
        object: ObjectFacts {
            bucket: r.object.bucket,
            key: r.object.key,
            size: r.object.size,
            etag: r.object.etag,
            version_id: r.object.version_id,
            event_time: r.object.event_time,
            content_type: r.content_type,
        },
        head: r.head,
        config: r.config,
    }
}

fn v2_request(r: CallRequest, read_budget: u64) -> v2::Request {
    use v2::alteryx_router::plugin::types::ObjectFacts;
    v2::Request {
        object: ObjectFacts {
            bucket: r.object.bucket,
            key: r.object.key,
            size: r.object.size,
            etag: r.object.etag,
            version_id: r.object.version_id,
            event_time: r.object.event_time,
            content_type: r.content_type,
        },
        head: r.head,
        config: r.config,
        rule_id: r.rule_id,
        workflows: r.workflows,
        read_budget,
    }
}

fn v3_request(r: CallRequest, read_budget: u64) -> v3::Request {
    use v3::alteryx_router::plugin::types::{Batch, ObjectFacts};
    let facts = |o: crate::event::ObjectCreated, content_type: Option<String>| ObjectFacts {
        bucket: o.bucket,
        key: o.key,
        size: o.size,
        etag: o.etag,
        version_id: o.version_id,
        event_time: o.event_time,
        content_type,
    };
    let batch = r.batch.map(|(batch, closed_by)| Batch {
        id: batch.id,
        group: batch.group,
        members: batch
            .members
            .into_iter()
            .enumerate()
            .map(|(i, member)| {
                // Only the closing member's head was read, and with it its content type.
                let content_type = (i as u32 == closed_by)
                    .then(|| r.content_type.clone())
                    .flatten();
                facts(member, content_type)
            })
            .collect(),
        closed_by,
    });
    v3::Request {
        object: facts(r.object, r.content_type),
        head: r.head,
        config: r.config,
        rule_id: r.rule_id,
        workflows: r.workflows,
        read_budget,
        batch,
    }
}

fn v1_answer(outcome: v1::Outcome) -> Answer {
    match outcome {
        v1::Outcome::Questions(values) => Answer::Values(
            None,
            values.into_iter().map(|v| (v.name, v.value)).collect(),
        ),
        v1::Outcome::Skip(reason) => Answer::Skip(reason),
    }
}

fn v3_answer(outcome: v3::Outcome) -> Answer {
    match outcome {
        v3::Outcome::Questions(values) => Answer::Values(
            None,
            values.into_iter().map(|v| (v.name, v.value)).collect(),
        ),
        v3::Outcome::Workflow(choice) => Answer::Values(
            Some(choice.workflow),
            choice
                .questions
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect(),
        ),
        v3::Outcome::Skip(reason) => Answer::Skip(reason),
    }
}

fn v2_answer(outcome: v2::Outcome) -> Answer {
    match outcome {
        v2::Outcome::Questions(values) => Answer::Values(
            None,
            values.into_iter().map(|v| (v.name, v.value)).collect(),
        ),
        v2::Outcome::Workflow(choice) => Answer::Values(
            Some(choice.workflow),
            choice
                .questions
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect(),
        ),
        v2::Outcome::Skip(reason) => Answer::Skip(reason),
    }
}

/// Question values within the limits, or an error saying which limit.
fn checked_values(
    values: Vec<(String, String)>,
    limits: &PluginLimits,
    plugin: &str,
    rule: &str,
) -> Result<Vec<(String, String)>, PluginError> {
    let too_large = |message: String| PluginError::OutputTooLarge {
        plugin: plugin.to_string(),
        rule: rule.to_string(),
        message,
    };
    if values.len() > limits.max_questions {
        return Err(too_large(format!(
            "{} question values (limit {})",
            values.len(),
            limits.max_questions
        )));
    }
    for (name, value) in &values {
        if name.is_empty() || name.len() > 256 {
            return Err(too_large(format!(
                "a question name is empty or longer than 256 bytes ({} bytes)",
                name.len()
            )));
        }
        if value.len() > limits.max_value_len {
            return Err(too_large(format!(
                "value of `{name}` is {} bytes (limit {})",
                value.len(),
                limits.max_value_len
            )));
        }
    }
    Ok(values)
}

/// Whether `bytes` are a precompiled artifact (`.cwasm`) rather than a component.
pub fn is_precompiled(bytes: &[u8]) -> bool {
    Engine::detect_precompiled(bytes).is_some()
}

/// Compile a component for this machine and link it as the router would: the interface
/// version it implements, or why the router would refuse it (`plugin publish` checks before
/// uploading).
#[cfg(feature = "plugin-compiler")]
pub fn check_component(wasm: &[u8]) -> Result<&'static str, PluginError> {
    let engine = Engine::new(&engine_config()).map_err(|e| load_error("(check)", e))?;
    let linker = plugin_linker(&engine)?;
    prepare(&engine, &linker, "(check)", wasm).map(|p| p.interface())
}

#[cfg(not(feature = "plugin-compiler"))]
pub fn compile_to_cwasm(_wasm: &[u8], _target: Option<&str>) -> Result<Vec<u8>, PluginError> {
    Err(load_error(
        "(compile)",
        "this build has no plugin compiler (feature `plugin-compiler` off)",
    ))
}

/// Compile a `.wasm` component ahead of time, optionally for another target
/// (e.g. `aarch64-unknown-linux-gnu` for Lambda on Graviton).
#[cfg(feature = "plugin-compiler")]
pub fn compile_to_cwasm(wasm: &[u8], target: Option<&str>) -> Result<Vec<u8>, PluginError> {
    let mut config = engine_config();
    if let Some(t) = target {
        config
            .target(t)
            .map_err(|e| load_error("(compile)", format!("target {t}: {e:#}")))?;
    }
    let engine = Engine::new(&config).map_err(|e| load_error("(compile)", format!("{e:#}")))?;
    engine
        .precompile_component(wasm)
        .map_err(|e| load_error("(compile)", format!("not a valid component: {e:#}")))
}
