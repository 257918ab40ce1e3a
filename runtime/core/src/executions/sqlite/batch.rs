//! Batches in the SQLite store: a `batches` table (the batch as JSON, its state and opening
//! time for the tracker) and `batch_open` (the open pointer per rule and group). Every join and
//! close is one `IMMEDIATE` transaction with the member's or the batch's execution record, so
//! the guarantees are DynamoDB's ([`crate::executions::batch`]).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteExecutionStore, db_err, read, write};
use crate::executions::batch::{
    Batch, BatchFilter, BatchState, BatchStore, CloseOutcome, Closing, Joined, Joining,
    new_batch_id,
};
use crate::executions::{ExecutionError, now_unix};

fn read_batch(conn: &Connection, table: &str, id: &str) -> Result<Option<Batch>, ExecutionError> {
    let text: Option<String> = conn
        .query_row("SELECT record FROM batches WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err("SELECT", table))?;
    text.map(|t| decode_batch(table, &t)).transpose()
}

fn decode_batch(table: &str, text: &str) -> Result<Batch, ExecutionError> {
    serde_json::from_str(text).map_err(db_err("decoding a batch", table))
}

fn write_batch(conn: &Connection, table: &str, batch: &Batch) -> Result<(), ExecutionError> {
    let json = serde_json::to_string(batch).map_err(db_err("encoding a batch", table))?;
    conn.execute(
        "INSERT INTO batches (id, rule_id, state, opened_at, record) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET state = ?3, record = ?5",
        params![
            batch.id,
            batch.rule_id,
            batch.state.as_str(),
            batch.opened_at,
            json
        ],
    )
    .map_err(db_err("INSERT", table))?;
    Ok(())
}

fn query_batches(
    conn: &Connection,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Batch>, ExecutionError> {
    let mut stmt = conn.prepare(sql).map_err(db_err("SELECT", table))?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(db_err("SELECT", table))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode_batch(table, &row.map_err(db_err("SELECT", table))?)?);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl BatchStore for SqliteExecutionStore {
    async fn join(&self, joining: Joining) -> Result<Joined, ExecutionError> {
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            if let Some(existing) = read(&tx, table, &joining.record.id)? {
                return Ok(Joined::Duplicate(existing));
            }
            let now = now_unix();
            let rule_id = joining.record.rule_id.clone();
            let open: Option<String> = tx
                .query_row(
                    "SELECT batch_id FROM batch_open WHERE rule_id = ?1 AND grp = ?2",
                    params![rule_id, joining.group],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err("SELECT", table))?;
            let mut batch = match open {
                Some(id) => read_batch(&tx, table, &id)?.ok_or_else(|| {
                    ExecutionError::Inconsistent(format!(
                        "the open pointer of rule {rule_id} names batch {id}, which does not exist"
                    ))
                })?,
                None => {
                    let mut batch =
                        Batch::opened(&new_batch_id(&rule_id), &rule_id, &joining.group, now);
                    batch.expires_at = joining.expires_at;
                    tx.execute(
                        "INSERT INTO batch_open (rule_id, grp, batch_id) VALUES (?1, ?2, ?3)",
                        params![rule_id, joining.group, batch.id],
                    )
                    .map_err(db_err("INSERT", table))?;
                    batch
                }
            };
            if batch.member_count >= joining.max_members {
                return Ok(Joined::Full(batch));
            }
            batch.members.push(joining.member);
            batch.member_count += 1;
            batch.last_member_at = now;
            for i in joining.satisfies {
                if !batch.satisfied.contains(&i) {
                    batch.satisfied.push(i);
                }
            }
            batch.satisfied.sort_unstable();
            let mut record = joining.record;
            record.batch_id = Some(batch.id.clone());
            write_batch(&tx, table, &batch)?;
            write(&tx, table, &record)?;
            tx.commit().map_err(db_err("COMMIT", table))?;
            Ok(Joined::Joined { record, batch })
        })
        .await
    }

    async fn close(&self, closing: Closing) -> Result<CloseOutcome, ExecutionError> {
        self.with_conn(move |conn, table| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("BEGIN IMMEDIATE", table))?;
            let mut batch = read_batch(&tx, table, &closing.batch_id)?
                .ok_or_else(|| ExecutionError::NotFound(closing.batch_id.clone()))?;
            let was_expired = batch.state == BatchState::Expired && closing.expired_too;
            if batch.state != BatchState::Open && !was_expired {
                return Ok(CloseOutcome::NotOpen(batch));
            }
            if closing
                .unchanged_since
                .is_some_and(|t| t != batch.last_member_at)
            {
                return Ok(CloseOutcome::Changed(batch));
            }
            let now = now_unix();
            batch.state = closing.state;
            batch.close_reason = Some(closing.reason);
            batch.closed_at = Some(now);
            batch.execution_id = closing.execution.as_ref().map(|e| e.id.clone());
            tx.execute(
                "DELETE FROM batch_open WHERE rule_id = ?1 AND grp = ?2 AND batch_id = ?3",
                params![batch.rule_id, batch.group, batch.id],
            )
            .map_err(db_err("DELETE", table))?;
            if let Some(execution) = &closing.execution {
                if read(&tx, table, &execution.id)?.is_some() {
                    return Err(ExecutionError::Inconsistent(format!(
                        "batch {} is open, yet its execution exists",
                        batch.id
                    )));
                }
                write(&tx, table, execution)?;
            }
            write_batch(&tx, table, &batch)?;
            tx.commit().map_err(db_err("COMMIT", table))?;
            Ok(CloseOutcome::Closed(batch))
        })
        .await
    }

    async fn get_batch(&self, id: &str) -> Result<Option<Batch>, ExecutionError> {
        let id = id.to_string();
        self.with_conn(move |conn, table| read_batch(conn, table, &id))
            .await
    }

    async fn open_batches(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
    ) -> Result<Vec<Batch>, ExecutionError> {
        self.with_conn(move |conn, table| {
            let (opened, id) = match after {
                Some((opened, id)) => (Some(opened), Some(id)),
                None => (None, None),
            };
            query_batches(
                conn,
                table,
                "SELECT record FROM batches WHERE state = 'OPEN'
                   AND (?1 IS NULL OR (opened_at, id) > (?1, ?2))
                 ORDER BY opened_at ASC, id ASC LIMIT ?3",
                params![opened, id, limit as i64],
            )
        })
        .await
    }

    async fn list_batches(&self, filter: &BatchFilter) -> Result<Vec<Batch>, ExecutionError> {
        let filter = filter.clone();
        self.with_conn(move |conn, table| {
            query_batches(
                conn,
                table,
                "SELECT record FROM batches WHERE (?1 = 0 OR state = 'OPEN')
                   AND (?2 IS NULL OR rule_id = ?2)
                 ORDER BY opened_at DESC, id DESC LIMIT ?3",
                params![
                    filter.open_only,
                    filter.rule_id,
                    filter.limit.map_or(-1, |l| l as i64)
                ],
            )
        })
        .await
    }
}
