//! The embedded execution store: one SQLite file, for the CLI and `demo`.
//!
//! Same guarantees as DynamoDB: every change runs in an `IMMEDIATE` transaction (a write lock
//! taken before the read), so two processes claiming the same execution at once produce one
//! winner; WAL mode and a busy timeout let them wait for each other instead of failing. Job
//! ownership lives in a `jobs` table and concurrency groups' counters in a `groups` table,
//! each written in the same transaction as the execution.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use std::collections::HashMap;

use super::{
    Claim, Claimant, Execution, ExecutionError, ExecutionStatus, ExecutionStore, Found, GroupUsage,
    LinePlace, ListFilter, SlotGrant, Takeover, check_takeover, now_unix, now_unix_ms, on_claim,
    retried, same_write, taken_over,
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
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    running INTEGER NOT NULL,
    cap INTEGER
);
-- A group's line mark (Unix ms) while executions wait in its line; a table of its own so a
-- store created before it needs no migration.
CREATE TABLE IF NOT EXISTS group_lines (
    name TEXT PRIMARY KEY,
    line_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_state_opened ON batches (state, opened_at);
CREATE TABLE IF NOT EXISTS batch_open (
    rule_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, grp)
);
";

mod batch;

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

/// Change `group`'s counter by `delta` (noting `cap` when given).
fn change_group(
    tx: &Connection,
    table: &str,
    group: &str,
    delta: i64,
    cap: Option<u32>,
) -> Result<(), ExecutionError> {
    tx.execute(
        "INSERT INTO groups (name, running, cap) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET running = running + ?2, cap = COALESCE(?3, cap)",
        params![group, delta, cap],
    )
    .map_err(db_err("INSERT", table))?;
    Ok(())
}

fn running(tx: &Connection, table: &str, group: &str) -> Result<i64, ExecutionError> {
    Ok(tx
        .query_row("SELECT running FROM groups WHERE name = ?1", [group], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .map_err(db_err("SELECT", table))?
        .unwrap_or(0))
}

fn line_at(tx: &Connection, table: &str, group: &str) -> Result<Option<i64>, ExecutionError> {
    tx.query_row(
        "SELECT line_at FROM group_lines WHERE name = ?1",
        [group],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map_err(db_err("SELECT", table))
}

/// The stored record, checked against what the writer read: `expected` status, and the
/// attempt and claim token of `record`. `Ok(true)` when the write may go ahead, `Ok(false)`
/// when `record` is already stored (an earlier try whose answer was lost).
fn check_expected(
    tx: &Connection,
    table: &str,
    record: &Execution,
    expected: ExecutionStatus,
) -> Result<bool, ExecutionError> {
    let current =
        read(tx, table, &record.id)?.ok_or_else(|| ExecutionError::NotFound(record.id.clone()))?;
    if current.status == expected
        && current.attempt == record.attempt
        && current.claim_token == record.claim_token
    {
        return Ok(true);
    }
    if same_write(&current, record) {
        return Ok(false);
    }
    Err(ExecutionError::Conflict {
        id: record.id.clone(),
        expected,
        attempt: record.attempt,
    })
}

#[async_trait::async_trait]
impl ExecutionStore for SqliteExecutionStore {
    async fn claim(&self, new: Execution) -> Result<Claim, ExecutionError> {
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let now = now_unix();
            let mut fresh = new;
            fresh.status = ExecutionStatus::Claimed;
            let claimant = Claimant {
                token: fresh
                    .claim_token
                    .clone()
                    .unwrap_or_else(|| Claimant::new(0).token),
                lease_until: fresh.lease_until.unwrap_or(now),
            };
            fresh.claim_token = Some(claimant.token.clone());
            fresh.lease_until = Some(claimant.lease_until);
            let claim = match read(&tx, table, &fresh.id)? {
                None => {
                    write(&tx, table, &fresh)?;
                    Claim::Acquired(fresh)
                }
                Some(existing) if existing.claim_token == fresh.claim_token => {
                    Claim::Acquired(existing)
                }
                Some(existing) => match on_claim(&existing, now) {
                    Found::Takeover => {
                        let next = taken_over(&existing, &claimant, now);
                        write(&tx, table, &next)?;
                        Claim::Acquired(next)
                    }
                    Found::InProgress => Claim::InProgress(existing),
                    Found::Done => Claim::Duplicate(existing),
                },
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
            // A record that holds a slot written into a status that holds none gives it back,
            // once: only if the stored record still holds it.
            let release = record.slot_held && !record.status.may_hold_slot();
            if release {
                record.slot_held = false;
            }
            if !check_expected(&tx, table, &record, expected_status)? {
                return Ok(());
            }
            if release
                && let Some(group) = &record.group
                && read(&tx, table, &record.id)?.is_some_and(|stored| stored.slot_held)
            {
                change_group(&tx, table, group, -1, None)?;
            }
            record.updated_at = now_unix();
            write(&tx, table, &record)?;
            tx.commit().map_err(db_err("COMMIT", table))
        })
        .await
    }

    async fn record_job(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let mut record = record.clone();
        self.with_conn(move |conn, table| {
            let Some(job_id) = record.job_id.clone() else {
                return Err(ExecutionError::Inconsistent(format!(
                    "execution {}: recording a job without a job id",
                    record.id
                )));
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            if !check_expected(&tx, table, &record, expected_status)? {
                return Ok(());
            }
            let owner: Option<String> = tx
                .query_row(
                    "SELECT execution_id FROM jobs WHERE job_id = ?1",
                    [&job_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err("SELECT", table))?;
            match owner {
                Some(owner) if owner != record.id => {
                    return Err(ExecutionError::JobTaken { job_id, owner });
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO jobs (job_id, execution_id) VALUES (?1, ?2)",
                        params![job_id, record.id],
                    )
                    .map_err(db_err("INSERT", table))?;
                }
            }
            record.updated_at = now_unix();
            write(&tx, table, &record)?;
            tx.commit().map_err(db_err("COMMIT", table))
        })
        .await
    }

    async fn claim_retry(
        &self,
        id: &str,
        claimant: &Claimant,
        takeover: Takeover,
    ) -> Result<Execution, ExecutionError> {
        let id = id.to_string();
        let claimant = claimant.clone();
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let existing =
                read(&tx, table, &id)?.ok_or_else(|| ExecutionError::NotFound(id.clone()))?;
            if existing.claim_token.as_deref() == Some(claimant.token.as_str()) {
                return Ok(existing);
            }
            let now = now_unix();
            check_takeover(&existing, takeover, now)?;
            let next = retried(&existing, &claimant, takeover, now);
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

    async fn job_owners(
        &self,
        job_ids: &[String],
    ) -> Result<HashMap<String, String>, ExecutionError> {
        let job_ids = job_ids.to_vec();
        self.with_conn(move |conn, table| {
            let mut stmt = conn
                .prepare("SELECT execution_id FROM jobs WHERE job_id = ?1")
                .map_err(db_err("SELECT", table))?;
            let mut owners = HashMap::new();
            for job in job_ids {
                let owner: Option<String> = stmt
                    .query_row([&job], |r| r.get(0))
                    .optional()
                    .map_err(db_err("SELECT", table))?;
                if let Some(owner) = owner {
                    owners.insert(job, owner);
                }
            }
            Ok(owners)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        let filter = filter.clone();
        self.with_conn(move |conn, table| {
            let (order, after) = if filter.oldest_first {
                ("created_at ASC, id ASC", "(created_at, id) > (?6, ?7)")
            } else {
                ("created_at DESC, id DESC", "(created_at, id) < (?6, ?7)")
            };
            let sql = format!(
                "SELECT record FROM executions
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR rule_id = ?2)
                   AND (?3 IS NULL OR created_at >= ?3)
                   AND (?5 IS NULL OR json_extract(record, '$.workflow') = ?5)
                   AND (?6 IS NULL OR {after})
                 ORDER BY {order} LIMIT ?4"
            );
            let mut stmt = conn.prepare(&sql).map_err(db_err("SELECT", table))?;
            let limit = filter.limit.map_or(-1, |l| l as i64);
            let (after_created, after_id) = match filter.after {
                Some((created, id)) => (Some(created), Some(id)),
                None => (None, None),
            };
            let rows = stmt
                .query_map(
                    params![
                        filter.status.map(|s| s.as_str()),
                        filter.rule_id,
                        filter.since,
                        limit,
                        filter.workflow,
                        after_created,
                        after_id,
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

    async fn acquire_slot(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
        cap: u32,
        place: LinePlace,
    ) -> Result<SlotGrant, ExecutionError> {
        let mut record = record.clone();
        record.slot_held = true;
        self.with_conn(move |conn, table| {
            let Some(group) = record.group.clone() else {
                return Err(ExecutionError::Inconsistent(format!(
                    "execution {}: acquiring a slot without a group",
                    record.id
                )));
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            if !check_expected(&tx, table, &record, expected_status)? {
                return Ok(SlotGrant::Acquired);
            }
            if read(&tx, table, &record.id)?.is_some_and(|stored| stored.slot_held) {
                return Err(ExecutionError::Inconsistent(format!(
                    "execution {} already holds a slot of group {group}",
                    record.id
                )));
            }
            let running = running(&tx, table, &group)?;
            let line_at = line_at(&tx, table, &group)?;
            if running >= i64::from(cap) || (place == LinePlace::Arrival && line_at.is_some()) {
                return Ok(SlotGrant::Full { running, line_at });
            }
            change_group(&tx, table, &group, 1, Some(cap))?;
            record.updated_at = now_unix();
            write(&tx, table, &record)?;
            tx.commit().map_err(db_err("COMMIT", table))?;
            Ok(SlotGrant::Acquired)
        })
        .await
    }

    async fn group_usage(
        &self,
        groups: &[String],
    ) -> Result<HashMap<String, GroupUsage>, ExecutionError> {
        let groups = groups.to_vec();
        self.with_conn(move |conn, table| {
            let mut stmt = conn
                .prepare("SELECT running, cap FROM groups WHERE name = ?1")
                .map_err(db_err("SELECT", table))?;
            let mut usage = HashMap::new();
            for group in groups {
                let row: Option<(i64, Option<i64>)> = stmt
                    .query_row([&group], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(db_err("SELECT", table))?;
                let line_at = line_at(conn, table, &group)?;
                if row.is_some() || line_at.is_some() {
                    let (running, cap) = row.unwrap_or((0, None));
                    usage.insert(
                        group.clone(),
                        GroupUsage {
                            group,
                            running,
                            cap: cap.and_then(|c| u32::try_from(c).ok()),
                            line_at,
                        },
                    );
                }
            }
            Ok(usage)
        })
        .await
    }

    async fn mark_line(&self, group: &str) -> Result<(), ExecutionError> {
        let group = group.to_string();
        self.with_conn(move |conn, table| {
            conn.execute(
                "INSERT INTO group_lines (name, line_at) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET line_at = ?2",
                params![group, now_unix_ms()],
            )
            .map_err(db_err("INSERT", table))?;
            Ok(())
        })
        .await
    }

    async fn clear_line(&self, group: &str, marked_before: i64) -> Result<bool, ExecutionError> {
        let group = group.to_string();
        self.with_conn(move |conn, table| {
            let removed = conn
                .execute(
                    "DELETE FROM group_lines WHERE name = ?1 AND line_at < ?2",
                    params![group, marked_before],
                )
                .map_err(db_err("DELETE", table))?;
            Ok(removed > 0)
        })
        .await
    }

    fn batches(&self) -> Option<&dyn super::batch::BatchStore> {
        Some(self)
    }
}
