//! Write an [alteryx-router](https://github.com/alteryx-router/alteryx-router) plugin in Rust
//! as one function over typed inputs.
//!
//! ```ignore
//! use alteryx_router_plugin::{Object, Outcome, Request};
//!
//! fn route(request: &Request, object: &mut Object) -> Result<Outcome, String> {
//!     let tail = object.read_tail(8); // a ranged read, counted against the rule's budget
//!     Ok(Outcome::questions([("Magic", format!("{tail:?}"))]))
//! }
//!
//! alteryx_router_plugin::export_plugin!(route);
//! ```
//!
//! Built for `wasm32-wasip2`, that is a component implementing the router's interface
//! `alteryx-router:plugin@0.3.0` (`plugins/wit/plugin.wit`), which runs on rules with and
//! without a `batch` block: on a batch rule, [`Request::batch`] lists the members and
//! [`Object::read_member_at`] reads them. Built natively, the same function
//! runs over a local file with [`testing::TestRun`], which applies the router's rules for reads
//! (the budget, the end of the object) so unit tests see what the router would do.
//!
//! What the router does with each answer: [`Outcome::Questions`] submits the rule's workflow
//! with these question values (they override the rule's templates of the same name);
//! [`Outcome::Workflow`] submits one of the rule's allowed workflows; [`Outcome::Skip`] records
//! the execution as `SKIPPED` with the reason; `Err(message)` records it as `ERROR`.

extern crate self as alteryx_router_plugin;

mod object;
pub mod testing;

pub use object::{Object, ObjectReader, Read};

/// The bindings generated from `plugins/wit` (interface 0.3.0). Plugins need not touch them:
/// [`export_plugin!`] does.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "router-plugin",
        pub_export_macro: true,
        default_bindings_module: "alteryx_router_plugin::bindings",
        runtime_path: "alteryx_router_plugin::__rt::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen;
}

/// What S3 told the router about the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectFacts {
    pub bucket: String,
    /// The key as written by the uploader (never URL-encoded).
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// When S3 created the object (RFC 3339).
    pub event_time: String,
    /// Known when the rule reads a head (`read_bytes` > 0).
    pub content_type: Option<String>,
}

/// A closed batch (on a rule with a `batch` block): the call decides for all its members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The batch's id (`{batch.id}` in question templates).
    pub id: String,
    /// The rule's `batch.by` value the members share (`{batch.group}`).
    pub group: String,
    /// The members in join order; index `i` is what [`Object::read_member_at`] calls member
    /// `i`. Their content types are unknown, but for the closing member's.
    pub members: Vec<ObjectFacts>,
    /// The index in `members` of the member that closed the batch (it is also
    /// [`Request::object`]).
    pub closed_by: u32,
}

/// One call's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub object: ObjectFacts,
    /// The first `read_bytes` bytes of the object (the rule's eager head; may be empty).
    pub head: Vec<u8>,
    /// The rule's `plugin.config` as JSON text (`{}` when absent); see [`Request::config`].
    pub config: String,
    pub rule_id: String,
    /// The workflows [`Outcome::Workflow`] may name: the rule's own first.
    pub workflows: Vec<String>,
    /// Bytes [`Object`] reads (of the object and of members) may return in this call, in
    /// total.
    pub read_budget: u64,
    /// The batch this call closes; `None` for a single object.
    pub batch: Option<Batch>,
}

impl Request {
    /// The rule's config as your own type; an error names what is wrong with it.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.config).map_err(|e| format!("plugin.config: {e}"))
    }
}

/// What the router should do with the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Submit the rule's workflow with these question values.
    Questions(Vec<(String, String)>),
    /// Submit `workflow` (one of [`Request::workflows`]) with these question values.
    Workflow {
        workflow: String,
        questions: Vec<(String, String)>,
    },
    /// Submit nothing; the reason is recorded (`SKIPPED`).
    Skip(String),
}

impl Outcome {
    pub fn questions<K: Into<String>, V: Into<String>>(
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Outcome::Questions(pairs(values))
    }

    pub fn workflow<K: Into<String>, V: Into<String>>(
        workflow: impl Into<String>,
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Outcome::Workflow {
            workflow: workflow.into(),
            questions: pairs(values),
        }
    }

    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome::Skip(reason.into())
    }
}

fn pairs<K: Into<String>, V: Into<String>>(
    values: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    values
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// Lines in the router's log (and `alteryx-router plugin run`'s output); on a native build,
/// standard error.
pub mod log {
    fn write(level: &str, message: &str) {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::alteryx_router::plugin::host::{Level, log};
            let level = match level {
                "debug" => Level::Debug,
                "warn" => Level::Warn,
                "error" => Level::Error,
                _ => Level::Info,
            };
            log(level, message);
        }
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("{level}: {message}");
    }

    pub fn debug(message: &str) {
        write("debug", message);
    }
    pub fn info(message: &str) {
        write("info", message);
    }
    pub fn warn(message: &str) {
        write("warn", message);
    }
    pub fn error(message: &str) {
        write("error", message);
    }
}

/// The signature of a plugin: the request, the object to read, and the answer.
pub type Route = fn(&Request, &mut Object) -> Result<Outcome, String>;

/// Export `route` as the plugin's entry point (once per plugin crate).
#[macro_export]
macro_rules! export_plugin {
    ($route:path) => {
        struct AlteryxRouterPlugin;

        impl $crate::bindings::Guest for AlteryxRouterPlugin {
            fn route(
                request: $crate::bindings::Request,
            ) -> ::core::result::Result<$crate::bindings::Outcome, ::std::string::String> {
                $crate::__dispatch(request, $route)
            }
        }

        $crate::bindings::export!(AlteryxRouterPlugin with_types_in $crate::bindings);
    };
}

/// The generated types to the SDK's, the call, and back.
#[doc(hidden)]
pub fn __dispatch(request: bindings::Request, route: Route) -> Result<bindings::Outcome, String> {
    use bindings::alteryx_router::plugin::types::{QuestionValue, WorkflowChoice};
    let facts = |o: bindings::alteryx_router::plugin::types::ObjectFacts| ObjectFacts {
        bucket: o.bucket,
        key: o.key,
        size: o.size,
        etag: o.etag,
        version_id: o.version_id,
        event_time: o.event_time,
        content_type: o.content_type,
    };
    let request = Request {
        object: facts(request.object),
        head: request.head,
        config: request.config,
        rule_id: request.rule_id,
        workflows: request.workflows,
        read_budget: request.read_budget,
        batch: request.batch.map(|b| Batch {
            id: b.id,
            group: b.group,
            members: b.members.into_iter().map(facts).collect(),
            closed_by: b.closed_by,
        }),
    };
    let member_sizes = request
        .batch
        .iter()
        .flat_map(|b| b.members.iter().map(|m| m.size))
        .collect();
    let mut object = Object::from_host(request.object.size, member_sizes, request.read_budget);
    let values = |v: Vec<(String, String)>| {
        v.into_iter()
            .map(|(name, value)| QuestionValue { name, value })
            .collect()
    };
    Ok(match route(&request, &mut object)? {
        Outcome::Questions(v) => bindings::Outcome::Questions(values(v)),
        Outcome::Workflow {
            workflow,
            questions,
        } => bindings::Outcome::Workflow(WorkflowChoice {
            workflow,
            questions: values(questions),
        }),
        Outcome::Skip(reason) => bindings::Outcome::Skip(reason),
    })
}
