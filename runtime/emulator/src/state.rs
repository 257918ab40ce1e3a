//! The emulator's state behind one lock: its configuration, the accepted credentials and
//! issued OAuth2 tokens, the OAuth1 nonces seen, pending faults, jobs and statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::{EmulatedWorkflow, EmulatorConfig};
use crate::faults::Faults;
use crate::jobs::Jobs;
use crate::oauth1;
use crate::stats::{EmulatorStats, Stats};

pub(crate) struct State {
    pub config: EmulatorConfig,
    /// Accepted key → secret (replaced at runtime by a rotation).
    pub credentials: HashMap<String, String>,
    /// Issued OAuth2 access token → expiry.
    pub tokens: HashMap<String, Instant>,
    pub nonces: oauth1::NonceCache,
    pub faults: Faults,
    pub jobs: Jobs,
    pub stats: Stats,
}

impl State {
    pub(crate) fn new(config: EmulatorConfig) -> Self {
        let credentials = config.credentials.iter().cloned().collect();
        let jobs = Jobs::new(config.slots, Instant::now());
        Self {
            config,
            credentials,
            tokens: HashMap::new(),
            nonces: oauth1::NonceCache::default(),
            faults: Faults::default(),
            jobs,
            stats: Stats::default(),
        }
    }

    pub(crate) fn workflow(&self, id: &str) -> Option<&EmulatedWorkflow> {
        self.config.workflows.iter().find(|w| w.id == id)
    }

    /// Replace the accepted credentials; every issued token stops working. Returns how many
    /// tokens were revoked.
    pub(crate) fn set_credentials(&mut self, credentials: Vec<(String, String)>) -> usize {
        self.credentials = credentials.iter().cloned().collect();
        self.config.credentials = credentials;
        let revoked = self.tokens.len();
        self.tokens.clear();
        revoked
    }

    /// Forget jobs, faults and statistics (configuration and credentials stay).
    pub(crate) fn reset(&mut self) {
        self.jobs.clear(Instant::now());
        self.faults.clear();
        self.stats = Stats::default();
    }

    pub(crate) fn stats(&self) -> EmulatorStats {
        EmulatorStats {
            requests: self.stats.requests,
            tokens_issued: self.stats.tokens_issued,
            jobs: self.jobs.counts(),
            operations: self.stats.operations.clone(),
        }
    }
}

/// The state, shared by the handlers and the [`crate::EmulatorHandle`].
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn new(state: State) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    /// The state with the job schedule brought up to now.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the emulator; keep serving.
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.jobs.advance(Instant::now());
        state
    }
}
