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
    /// Where the records are, for errors: `executions in /path/executions.sqlite3`.
    table: Arc<str>,
}

/// An error of `action` on `table`, keeping SQLite's (or serde's) error as the cause.
fn db_err<E>(action: &'static str, table: &str) -> impl FnOnce(E) -> ExecutionError + use<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let table = table.to_string();
    move |e| ExecutionError::store(action, table, e)
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
        let table = format!("executions in {}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(db_err("creating its directory", &table))?;
        }
        let conn = Connection::open(path).map_err(db_err("opening", &table))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(db_err("setting the busy timeout", &table))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("setting WAL mode", &table))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_err("creating the schema", &table))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path.to_path_buf()),
            table: table.into(),
        })
    }

    pub fn in_memory() -> Result<Self, ExecutionError> {
        let table = "executions in memory";
        let conn = Connection::open_in_memory().map_err(db_err("opening", table))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_err("creating the schema", table))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
            table: table.into(),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Run `f` on the connection, on tokio's blocking pool; `f` gets the `table` for errors.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, ExecutionError> + Send + 'static,
    ) -> Result<T, ExecutionError> {
        let conn = Arc::clone(&self.conn);
        let table = Arc::clone(&self.table);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                ExecutionError::Inconsistent(format!(
                    "{table}: the connection lock is poisoned (a thread panicked while using it)"
                ))
            })?;
            f(&mut guard, &table)
        })
        .await
        .map_err(db_err("running a blocking task", &self.table))?
    }
}

fn read(conn: &Connection, table: &str, id: &str) -> Result<Option<Execution>, ExecutionError> {
    let text: Option<String> = conn
        .query_row("SELECT record FROM executions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err("SELECT", table))?;
    text.map(|t| decode(table, &t)).transpose()
}

fn decode(table: &str, text: &str) -> Result<Execution, ExecutionError> {
    serde_json::from_str(text).map_err(db_err("decoding a record", table))
}

fn write(conn: &Connection, table: &str, record: &Execution) -> Result<(), ExecutionError> {
    let json = serde_json::to_string(record).map_err(db_err("encoding a record", table))?;
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
    .map_err(db_err("INSERT", table))?;
    Ok(())
}

#[async_trait::async_trait]
impl ExecutionStore for SqliteExecutionStore {
    async fn claim(&self, new: Execution, lease: Duration) -> Result<Claim, ExecutionError> {
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let now = now_unix();
            let claim = match read(&tx, table, &new.id)? {
                None => {
                    let mut fresh = new;
                    fresh.status = ExecutionStatus::Claimed;
                    fresh.lease_until = Some(now + lease.as_secs() as i64);
                    write(&tx, table, &fresh)?;
                    Claim::Acquired(fresh)
                }
                Some(existing) if claimable(&existing, now) => {
                    let next = taken_over(&existing, lease, now);
                    write(&tx, table, &next)?;
                    Claim::Acquired(next)
                }
                Some(existing) => Claim::Duplicate(existing),
            };
            tx.commit().map_err(db_err("COMMIT", table))?;
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
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let current = read(&tx, table, &record.id)?
                .ok_or_else(|| ExecutionError::NotFound(record.id.clone()))?;
            if current.status != expected_status || current.attempt != record.attempt {
                return Err(ExecutionError::Conflict {
                    id: record.id.clone(),
                    expected: expected_status,
                    attempt: record.attempt,
                });
            }
            record.updated_at = now_unix();
            write(&tx, table, &record)?;
            tx.commit().map_err(db_err("COMMIT", table))
        })
        .await
    }

    async fn claim_retry(&self, id: &str, lease: Duration) -> Result<Execution, ExecutionError> {
        let id = id.to_string();
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let existing =
                read(&tx, table, &id)?.ok_or_else(|| ExecutionError::NotFound(id.clone()))?;
            check_retryable(&existing)?;
            let mut next = taken_over(&existing, lease, now_unix());
            next.message = None;
            write(&tx, table, &next)?;
            tx.commit().map_err(db_err("COMMIT", table))?;
            Ok(next)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError> {
        let id = id.to_string();
        self.with_conn(move |conn, table| read(conn, table, &id))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        let filter = filter.clone();
        self.with_conn(move |conn, table| {
            let mut stmt = conn
                .prepare(
                    "SELECT record FROM executions
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR rule_id = ?2)
                       AND (?3 IS NULL OR created_at >= ?3)
                     ORDER BY created_at DESC, id LIMIT ?4",
                )
                .map_err(db_err("SELECT", table))?;
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
                .map_err(db_err("SELECT", table))?;
            let mut out = Vec::new();
            for row in rows {
                let text = row.map_err(db_err("SELECT", table))?;
                out.push(decode(table, &text)?);
            }
            Ok(out)
        })
        .await
    }
}
