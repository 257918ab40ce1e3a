//! The sandboxed plugin host (wasmtime, Component Model).
//!
//! One `Engine` per process; each loaded plugin is compiled (or deserialized) once and
//! pre-linked (`RouterPluginPre`); every call gets a fresh `Store` and instance, so nothing
//! leaks from one object to the next. Limits are enforced by the engine, not by trust:
//! - time: epoch interruption with a ticker thread (a deadline costs nothing per instruction,
//!   unlike fuel, and bounds instantiation too); the call traps when its deadline passes;
//! - memory, tables and instances: a `ResourceLimiter` that also remembers when it refused;
//! - output: number and length of question values, log volume.
//!
//! Capabilities: the WASI imports toolchains such as componentize-py need, with no
//! preopened directories, no environment, no arguments, no network (TCP, UDP and name lookup
//! off, every socket address refused) and stdout/stderr captured into the call's log.
//! Calls run on tokio's blocking pool: wasm is CPU-bound and must not stall the event loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{
    PluginError, PluginInput, PluginLimits, PluginOutcome, PluginRun, PluginSpec, PluginStore,
};

wasmtime::component::bindgen!({
    path: "../../plugins/wit",
    world: "router-plugin",
});

use self::alteryx_router::plugin::host::Level;
use self::alteryx_router::plugin::types::ObjectFacts;

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
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

// The `types` interface has no functions; its host trait is empty.
impl self::alteryx_router::plugin::types::Host for CallState {}

impl self::alteryx_router::plugin::host::Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let line: String = message.chars().take(1024).collect();
        push_log(
            &mut self.logs,
            &mut self.log_bytes,
            self.max_log_bytes,
            format!("{level}: {line}"),
        );
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

type Loaded = Arc<RouterPluginPre<CallState>>;

/// A loaded plugin and what it was loaded from.
struct Cached {
    /// `None` when the bytes were refused by a rule's pin and so never deserialized: a
    /// tampered `.cwasm` must not reach `Component::deserialize`.
    pre: Option<Loaded>,
    /// sha256 of the bytes it was loaded from (what a rule's `sha256` pin is compared with).
    digest: String,
    /// The store's version token when it was fetched (`None`: the store cannot tell).
    version: Option<String>,
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
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| load_error("(linker)", e))?;
        RouterPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| load_error("(linker)", e))?;
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

    /// The loaded plugin for a rule, refusing one whose hash differs from the rule's pin.
    ///
    /// A plugin is downloaded, hashed and compiled or deserialized once; afterwards its store is
    /// asked at most every `cache_ttl` for a version token, and it is fetched again only when
    /// that changed. (Fetching on every call downloaded a 35 MB `.cwasm` from S3 per object.)
    async fn load(&self, spec: &PluginSpec) -> Result<Loaded, PluginError> {
        let known_version = {
            let cache = self.cache()?;
            match cache.get(&spec.name) {
                Some(entry) if entry.checked.elapsed() < self.cache_ttl => {
                    check_pin(spec, &entry.digest)?;
                    match &entry.pre {
                        Some(pre) => return Ok(Arc::clone(pre)),
                        None => entry.version.clone(),
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
                check_pin(spec, &entry.digest)?;
                if let Some(pre) = &entry.pre {
                    return Ok(Arc::clone(pre));
                }
            }
        }
        let fetched = self.store.fetch(&spec.name).await?;
        let digest = hex::encode(Sha256::digest(&fetched.bytes));
        if let Err(refused) = check_pin(spec, &digest) {
            // Remember what the store holds, so this rule's next objects are refused without
            // downloading it again.
            self.cache()?.insert(
                spec.name.clone(),
                Cached {
                    pre: None,
                    digest,
                    version,
                    checked: Instant::now(),
                },
            );
            return Err(refused);
        }
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let name = spec.name.clone();
        let location = fetched.location.clone();
        let started = Instant::now();
        let pre =
            tokio::task::spawn_blocking(move || prepare(&engine, &linker, &name, &fetched.bytes))
                .await
                .map_err(|e| load_error(&spec.name, e))??;
        tracing::info!(plugin = %spec.name, %location, sha256 = %digest,
            elapsed_ms = started.elapsed().as_millis() as u64, "plugin loaded");
        let pre = Arc::new(pre);
        self.cache()?.insert(
            spec.name.clone(),
            Cached {
                pre: Some(Arc::clone(&pre)),
                digest,
                version,
                checked: Instant::now(),
            },
        );
        Ok(pre)
    }

    fn cache(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Cached>>, PluginError> {
        self.loaded
            .lock()
            .map_err(|_| load_error("(cache)", "plugin cache lock poisoned"))
    }

    /// Run a rule's plugin over one object.
    pub async fn run(
        &self,
        spec: &PluginSpec,
        input: PluginInput<'_>,
    ) -> Result<PluginRun, PluginError> {
        let pre = self.load(spec).await?;
        let mut limits = self.limits.clone();
        if let Some(ms) = spec.timeout_ms {
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = spec.memory_mb {
            limits.memory_bytes = (mb as usize) << 20;
        }
        let request = Request {
            object: ObjectFacts {
                bucket: input.object.bucket.clone(),
                key: input.object.key.clone(),
                size: input.object.size,
                etag: input.object.etag.clone(),
                version_id: input.object.version_id.clone(),
                event_time: input.object.event_time.clone(),
                content_type: input.content_type.map(str::to_string),
            },
            head: input.head.to_vec(),
            config: input.config_json.to_string(),
        };
        let engine = self.engine.clone();
        let plugin = spec.name.clone();
        let rule = input.rule_id.to_string();
        tokio::task::spawn_blocking(move || call(&engine, &pre, request, &limits, &plugin, &rule))
            .await
            .map_err(|e| PluginError::Trap {
                plugin: spec.name.clone(),
                rule: input.rule_id.to_string(),
                message: format!("host task failed: {e}"),
            })?
    }
}

/// A rule may pin its plugin's sha256; anything else is refused.
fn check_pin(spec: &PluginSpec, digest: &str) -> Result<(), PluginError> {
    match &spec.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(digest) => {
            Err(PluginError::ChecksumMismatch {
                plugin: spec.name.clone(),
                expected: expected.to_ascii_lowercase(),
                actual: digest.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Compile or deserialize a plugin and pre-link it.
fn prepare(
    engine: &Engine,
    linker: &Linker<CallState>,
    name: &str,
    bytes: &[u8],
) -> Result<RouterPluginPre<CallState>, PluginError> {
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
    let instance_pre =
        linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Incompatible {
                plugin: name.to_string(),
                message: format!("{e:#}"),
            })?;
    RouterPluginPre::new(instance_pre).map_err(|e| PluginError::Incompatible {
        plugin: name.to_string(),
        message: format!("{e:#}"),
    })
}

/// Load a `.cwasm`. Wasmtime refuses artifacts from another version or configuration, or for
/// another CPU, with an error we pass on.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    // SAFETY: `Component::deserialize` trusts the bytes to be wasmtime's own compiled output.
    // They come from the operator's plugin store (a directory or bucket only they can write,
    // optionally pinned by sha256 in the rule), never from an uploaded object; wasmtime
    // still checks the version, configuration and target before using them.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| {
        load_error(
            name,
            format!("precompiled .cwasm does not fit this host (built by another wasmtime version, with other settings or for another CPU?); recompile it with `alteryx-router plugin compile`: {e:#}"),
        )
    })
}

fn call(
    engine: &Engine,
    pre: &RouterPluginPre<CallState>,
    request: Request,
    limits: &PluginLimits,
    plugin: &str,
    rule: &str,
) -> Result<PluginRun, PluginError> {
    let started = Instant::now();
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
        },
    );
    store.limiter(|s| &mut s.limits);
    let ticks = (limits.timeout.as_micros() / TICK.as_micros()).max(1) as u64 + 1;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    if limits.meter_fuel {
        // Metering only: the limit stays the epoch deadline.
        store
            .set_fuel(u64::MAX)
            .map_err(|e| load_error(plugin, format!("{e:#}")))?;
    }

    let result = pre
        .instantiate(&mut store)
        .and_then(|instance| instance.call_route(&mut store, &request));

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
    let fuel_used = if limits.meter_fuel {
        store.get_fuel().ok().map(|left| u64::MAX - left)
    } else {
        None
    };
    let (plugin, rule) = (plugin.to_string(), rule.to_string());
    let outcome = match result {
        Err(e) => {
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
        Ok(Ok(Outcome::Skip(reason))) => PluginOutcome::Skip(reason.chars().take(2000).collect()),
        Ok(Ok(Outcome::Questions(values))) => {
            if values.len() > limits.max_questions {
                return Err(PluginError::OutputTooLarge {
                    plugin,
                    rule,
                    message: format!(
                        "{} question values (limit {})",
                        values.len(),
                        limits.max_questions
                    ),
                });
            }
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                if v.name.is_empty() || v.name.len() > 256 {
                    return Err(PluginError::OutputTooLarge {
                        plugin,
                        rule,
                        message: format!(
                            "a question name is empty or longer than 256 bytes ({} bytes)",
                            v.name.len()
                        ),
                    });
                }
                if v.value.len() > limits.max_value_len {
                    return Err(PluginError::OutputTooLarge {
                        plugin,
                        rule,
                        message: format!(
                            "value of `{}` is {} bytes (limit {})",
                            v.name,
                            v.value.len(),
                            limits.max_value_len
                        ),
                    });
                }
                out.push((v.name, v.value));
            }
            PluginOutcome::Questions(out)
        }
    };
    Ok(PluginRun {
        outcome,
        elapsed: started.elapsed(),
        fuel_used,
        logs,
    })
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
