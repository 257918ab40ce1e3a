//! Run a plugin natively over local bytes, as the router would: the head, the config, the
//! budget and the allowed workflows of a rule, and the reads counted.
//!
//! ```ignore
//! let ran = TestRun::file("fixtures/sales.xlsx")?.config(r#"{"required": ["Sales"]}"#).run(route);
//! assert_eq!(ran.outcome, Ok(Outcome::questions([("Sheets", "Sales,Costs")])));
//! assert!(ran.bytes_read < 16 << 10);
//! ```

use crate::{Batch, Object, ObjectFacts, Outcome, Read, Request, Route};

/// Defaults as a rule without `read_bytes`, `read_budget_bytes` or `workflows` gets them.
pub struct TestRun {
    request: Request,
    bytes: Vec<u8>,
    /// The batch's members' content, in join order (empty for a single object).
    members: Vec<Vec<u8>>,
    read_bytes: u64,
}

/// What a test run answered and read.
#[derive(Debug)]
pub struct Ran {
    /// The plugin's answer; a refused read (past the budget or the end) is an `Err` saying so,
    /// as the router would record it.
    pub outcome: Result<Outcome, String>,
    /// The ranged reads, in order.
    pub reads: Vec<Read>,
    /// Bytes returned by ranged reads.
    pub bytes_read: u64,
    /// Bytes of the eager head.
    pub head_bytes: u64,
}

impl TestRun {
    /// An object with this key and content.
    pub fn new(key: &str, bytes: Vec<u8>) -> Self {
        Self {
            request: Request {
                object: ObjectFacts {
                    bucket: "local".into(),
                    key: key.into(),
                    size: bytes.len() as u64,
                    event_time: "2026-01-01T00:00:00Z".into(),
                    ..ObjectFacts::default()
                },
                head: Vec::new(),
                config: "{}".into(),
                rule_id: "test-rule".into(),
                workflows: vec!["rule-workflow".into()],
                read_budget: 1 << 20,
                batch: None,
            },
            bytes,
            members: Vec::new(),
            read_bytes: 65536,
        }
    }

    /// A closed batch of these members (key and content, in join order), as a rule with a
    /// `batch` block would hand it over: the last member closed it and is the object, and
    /// gets the head. Panics on an empty list (a batch has at least one member).
    pub fn batch<K: Into<String>>(
        group: &str,
        members: impl IntoIterator<Item = (K, Vec<u8>)>,
    ) -> Self {
        let members: Vec<(String, Vec<u8>)> =
            members.into_iter().map(|(k, b)| (k.into(), b)).collect();
        let (last_key, last_bytes) = members.last().expect("a batch has at least one member");
        let mut run = Self::new(last_key, last_bytes.clone());
        let facts = members
            .iter()
            .map(|(key, bytes)| ObjectFacts {
                key: key.clone(),
                size: bytes.len() as u64,
                ..run.request.object.clone()
            })
            .collect::<Vec<_>>();
        run.request.batch = Some(Batch {
            id: "test-batch".into(),
            group: group.into(),
            closed_by: (facts.len() - 1) as u32,
            members: facts,
        });
        run.members = members.into_iter().map(|(_, b)| b).collect();
        run
    }

    /// A local file as the object (its file name as the key).
    pub fn file(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let key = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self::new(&key, std::fs::read(path)?))
    }

    pub fn key(mut self, key: &str) -> Self {
        self.request.object.key = key.into();
        self
    }

    /// The rule's `plugin.config`, as JSON.
    pub fn config(mut self, json: &str) -> Self {
        self.request.config = json.into();
        self
    }

    /// The rule's `plugin.read_bytes` (default 65536).
    pub fn read_bytes(mut self, n: u64) -> Self {
        self.read_bytes = n;
        self
    }

    /// The rule's `plugin.read_budget_bytes` (default 1 MiB).
    pub fn read_budget(mut self, n: u64) -> Self {
        self.request.read_budget = n;
        self
    }

    /// The rule's workflow and its `plugin.workflows`.
    pub fn workflows<S: Into<String>>(mut self, workflows: impl IntoIterator<Item = S>) -> Self {
        self.request.workflows = workflows.into_iter().map(Into::into).collect();
        self
    }

    /// Call `route` once.
    pub fn run(self, route: Route) -> Ran {
        let mut request = self.request;
        let head_len = self.read_bytes.min(self.bytes.len() as u64) as usize;
        request.head = self.bytes[..head_len].to_vec();
        let mut object = Object::local(self.bytes, self.members, request.read_budget);
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route(&request, &mut object)
        }));
        let outcome = match called {
            Ok(outcome) => outcome,
            Err(panic) => Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the plugin panicked".into())),
        };
        if let Ok(Outcome::Workflow { workflow, .. }) = &outcome
            && !request.workflows.contains(workflow)
        {
            return Ran {
                outcome: Err(format!(
                    "chose workflow `{workflow}`, which the rule does not allow (allowed: {})",
                    request.workflows.join(", ")
                )),
                reads: object.reads().to_vec(),
                bytes_read: object.bytes_read(),
                head_bytes: head_len as u64,
            };
        }
        Ran {
            outcome,
            reads: object.reads().to_vec(),
            bytes_read: object.bytes_read(),
            head_bytes: head_len as u64,
        }
    }
}
