//! The embedded execution store: one SQLite file, for the CLI and `demo`.
//!
//! Same guarantees as DynamoDB: claims run in an `IMMEDIATE` transaction (a write lock taken
//! before the read), so two processes claiming the same execution at once produce one winner;
//! WAL mode and a busy timeout let them wait for each other instead of failing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Claim, Execution, ExecutionError, ExecutionStatus, ExecutionStore, ListFilter, check_retryable,
    claimable, now_unix, taken_over,
};

pub struct SqliteExecutionStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

fn db_err(e: impl std::fmt::Display) -> ExecutionError {
    ExecutionError::Store(format!("sqlite: {e}"))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_status_created ON executions (status, created_at);
";

impl SqliteExecutionStore {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ExecutionError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ExecutionError::Store(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| ExecutionError::Store(format!("opening {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path.to_path_buf()),
        })
    }

    pub fn in_memory() -> Result<Self, ExecutionError> {
        let conn = Connection::open_in_memory().map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ExecutionError> + Send + 'static,
    ) -> Result<T, ExecutionError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| ExecutionError::Store("sqlite connection lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ExecutionError::Store(format!("sqlite task: {e}")))?
    }
}

fn read(conn: &Connection, id: &str) -> Result<Option<Execution>, ExecutionError> {
    let text: Option<String> = conn
        .query_row("SELECT record FROM executions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| db_err(format!("record {id}: {e}"))))
        .transpose()
}

fn write(conn: &Connection, record: &Execution) -> Result<(), ExecutionError> {
    let json = serde_json::to_string(record).map_err(db_err)?;
    conn.execute(
        "INSERT INTO executions (id, status, attempt, rule_id, created_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET status = ?2, attempt = ?3, rule_id = ?4, created_at = ?5, record = ?6",
        params![
            record.id,
            record.status.as_str(),
            record.attempt,
            record.rule_id,
            record.created_at,
            json
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl ExecutionStore for SqliteExecutionStore {
    async fn claim(&self, new: Execution, lease: Duration) -> Result<Claim, ExecutionError> {
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let now = now_unix();
            let claim = match read(&tx, &new.id)? {
                None => {
                    let mut fresh = new;
                    fresh.status = ExecutionStatus::Claimed;
                    fresh.lease_until = Some(now + lease.as_secs() as i64);
                    write(&tx, &fresh)?;
                    Claim::Acquired(fresh)
                }
                Some(existing) if claimable(&existing, now) => {
                    let next = taken_over(&existing, lease, now);
                    write(&tx, &next)?;
                    Claim::Acquired(next)
                }
                Some(existing) => Claim::Duplicate(existing),
            };
            tx.commit().map_err(db_err)?;
            Ok(claim)
        })
        .await
    }

    async fn update(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let mut record = record.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let current = read(&tx, &record.id)?
                .ok_or_else(|| ExecutionError::NotFound(record.id.clone()))?;
            if current.status != expected_status || current.attempt != record.attempt {
                return Err(ExecutionError::Conflict {
                    id: record.id.clone(),
                    expected: expected_status,
                    attempt: record.attempt,
                });
            }
            record.updated_at = now_unix();
            write(&tx, &record)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn claim_retry(&self, id: &str, lease: Duration) -> Result<Execution, ExecutionError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let existing = read(&tx, &id)?.ok_or_else(|| ExecutionError::NotFound(id.clone()))?;
            check_retryable(&existing)?;
            let mut next = taken_over(&existing, lease, now_unix());
            next.message = None;
            write(&tx, &next)?;
            tx.commit().map_err(db_err)?;
            Ok(next)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError> {
        let id = id.to_string();
        self.with_conn(move |conn| read(conn, &id)).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        let filter = filter.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT record FROM executions
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR rule_id = ?2)
                       AND (?3 IS NULL OR created_at >= ?3)
                     ORDER BY created_at DESC, id LIMIT ?4",
                )
                .map_err(db_err)?;
            let limit = filter.limit.map_or(-1, |l| l as i64);
            let rows = stmt
                .query_map(
                    params![
                        filter.status.map(|s| s.as_str()),
                        filter.rule_id,
                        filter.since,
                        limit
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let text = row.map_err(db_err)?;
                out.push(serde_json::from_str(&text).map_err(db_err)?);
            }
            Ok(out)
        })
        .await
    }
}
