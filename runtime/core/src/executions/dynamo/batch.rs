//! Batches in the DynamoDB store: batch items (`batch#{id}`), open pointers
//! (`batchopen#{rule}#{hash of group}`) and member records, changed together with
//! `TransactWriteItems` ([`crate::executions::batch`] says which and why). Members are appended
//! with `list_append`, the satisfied `require` entries are a number set (`ADD`), so concurrent
//! joins never lose one another's member. A cancelled transaction is read back: the member's
//! record (with the joiner's token: our own write whose answer was lost; another: a duplicate),
//! or a pointer or batch that changed under us (try again).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::{DynamoExecutionStore, Item};
use crate::executions::batch::{
    BATCH_OPEN_STATUS, Batch, BatchFilter, BatchMember, BatchState, BatchStore, CONTENTION_TRIES,
    CloseOutcome, CloseReason, Closing, Joined, Joining, batch_item_id, new_batch_id,
    pointer_item_id,
};
use crate::executions::{ExecutionError, now_unix};
use crate::tables::EXECUTIONS_STATUS_INDEX;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoExecutionStore {
    fn batch_err(&self, what: String) -> ExecutionError {
        ExecutionError::store(
            format!("decoding {what}"),
            &self.table,
            "malformed batch item",
        )
    }

    fn encode_member(&self, member: &BatchMember) -> Result<AttributeValue, ExecutionError> {
        serde_dynamo::to_attribute_value(member)
            .map_err(|e| ExecutionError::store("encoding a batch member", &self.table, e))
    }

    fn encode_batch(&self, batch: &Batch) -> Result<Item, ExecutionError> {
        let mut item: Item = HashMap::from([
            ("id".into(), s(batch_item_id(&batch.id))),
            ("batch_id".into(), s(&batch.id)),
            ("rule_id".into(), s(&batch.rule_id)),
            ("batch_group".into(), s(&batch.group)),
            ("state".into(), s(batch.state.as_str())),
            ("opened_at".into(), n(batch.opened_at)),
            ("last_member_at".into(), n(batch.last_member_at)),
            ("member_count".into(), n(batch.member_count)),
            ("expires_at".into(), n(batch.expires_at)),
        ]);
        let members = batch
            .members
            .iter()
            .map(|m| self.encode_member(m))
            .collect::<Result<Vec<_>, _>>()?;
        item.insert("members".into(), AttributeValue::L(members));
        if !batch.satisfied.is_empty() {
            item.insert(
                "satisfied".into(),
                AttributeValue::Ns(batch.satisfied.iter().map(u32::to_string).collect()),
            );
        }
        if batch.state == BatchState::Open {
            // Only open batches are in the status index (for the tracker's timers).
            item.insert("status".into(), s(BATCH_OPEN_STATUS));
            item.insert("created_at".into(), n(batch.opened_at));
        }
        Ok(item)
    }

    fn decode_batch(&self, item: &Item) -> Result<Batch, ExecutionError> {
        let id = match item.get("batch_id") {
            Some(AttributeValue::S(id)) => id.clone(),
            _ => return Err(self.batch_err("a batch item without batch_id".into())),
        };
        let bad = |field: &str| self.batch_err(format!("batch {id}: field {field}"));
        let text = |field: &str| match item.get(field) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(bad(field)),
        };
        let opt_text = |field: &str| match item.get(field) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let number = |field: &str| match item.get(field) {
            Some(AttributeValue::N(v)) => v.parse::<i64>().map_err(|_| bad(field)),
            _ => Err(bad(field)),
        };
        let state = match text("state")?.as_str() {
            "OPEN" => BatchState::Open,
            "CLOSED" => BatchState::Closed,
            "EXPIRED" => BatchState::Expired,
            _ => return Err(bad("state")),
        };
        let close_reason = match opt_text("close_reason") {
            None => None,
            Some(r) => Some(
                serde_json::from_value::<CloseReason>(serde_json::Value::String(r))
                    .map_err(|_| bad("close_reason"))?,
            ),
        };
        let members = match item.get("members") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|m| serde_dynamo::from_attribute_value(m.clone()).map_err(|_| bad("members")))
                .collect::<Result<Vec<BatchMember>, _>>()?,
            None => Vec::new(),
            _ => return Err(bad("members")),
        };
        let mut satisfied = match item.get("satisfied") {
            Some(AttributeValue::Ns(set)) => set
                .iter()
                .map(|v| v.parse::<u32>().map_err(|_| bad("satisfied")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        satisfied.sort_unstable();
        Ok(Batch {
            rule_id: text("rule_id")?,
            group: text("batch_group")?,
            state,
            opened_at: number("opened_at")?,
            last_member_at: number("last_member_at")?,
            member_count: u32::try_from(number("member_count")?)
                .map_err(|_| bad("member_count"))?,
            satisfied,
            members,
            closed_at: number("closed_at").ok(),
            close_reason,
            execution_id: opt_text("execution_id"),
            expires_at: number("expires_at")?,
            id,
        })
    }

    /// A batch without its member list (up to 400 KB, read on every join otherwise: the
    /// joiner needs only the counts to decide whether it completed the batch).
    async fn batch_head(&self, id: &str) -> Result<Option<Batch>, ExecutionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(batch_item_id(id)))
            .consistent_read(true)
            .projection_expression(
                "batch_id, rule_id, batch_group, #state, opened_at, last_member_at, member_count, satisfied, closed_at, close_reason, execution_id, expires_at",
            )
            .expression_attribute_names("#state", "state")
            .send()
            .await
            .map_err(|e| ExecutionError::store("GetItem", &self.table, e))?;
        out.item.map(|item| self.decode_batch(&item)).transpose()
    }

    async fn read_item(&self, key: String) -> Result<Option<Item>, ExecutionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ExecutionError::store("GetItem", &self.table, e))?;
        Ok(out.item)
    }

    fn build<T, E: std::error::Error + Send + Sync + 'static>(
        &self,
        built: Result<T, E>,
    ) -> Result<T, ExecutionError> {
        built.map_err(|e| ExecutionError::store("building TransactWriteItems", &self.table, e))
    }

    fn put_absent(&self, item: Item) -> Result<TransactWriteItem, ExecutionError> {
        let put = self.build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(id)")
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait::async_trait]
impl BatchStore for DynamoExecutionStore {
    async fn join(&self, joining: Joining) -> Result<Joined, ExecutionError> {
        let rule_id = joining.record.rule_id.clone();
        let pointer_id = pointer_item_id(&rule_id, &joining.group);
        for _ in 0..CONTENTION_TRIES {
            let now = now_unix();
            let pointer = self.read_item(pointer_id.clone()).await?;
            let open = pointer.as_ref().and_then(|p| match p.get("batch_id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            });
            let mut record = joining.record.clone();
            let items = match &open {
                None => {
                    let mut batch =
                        Batch::opened(&new_batch_id(&rule_id), &rule_id, &joining.group, now);
                    batch.expires_at = joining.expires_at;
                    batch.members.push(joining.member.clone());
                    batch.member_count = 1;
                    batch.satisfied = joining.satisfies.clone();
                    batch.satisfied.sort_unstable();
                    batch.satisfied.dedup();
                    record.batch_id = Some(batch.id.clone());
                    let pointer: Item = HashMap::from([
                        ("id".into(), s(pointer_id.clone())),
                        ("batch_id".into(), s(&batch.id)),
                        ("rule_id".into(), s(&rule_id)),
                        ("batch_group".into(), s(&joining.group)),
                        ("expires_at".into(), n(joining.expires_at)),
                    ]);
                    vec![
                        self.put_absent(pointer)?,
                        self.put_absent(self.encode_batch(&batch)?)?,
                        self.put_absent(self.encode_item(&record)?)?,
                    ]
                }
                Some(batch_id) => {
                    record.batch_id = Some(batch_id.clone());
                    let mut set = "SET last_member_at = :now, members = list_append(members, :m) ADD member_count :one".to_string();
                    let mut update = Update::builder()
                        .table_name(&self.table)
                        .key("id", s(batch_item_id(batch_id)))
                        .condition_expression("#state = :open AND member_count < :max")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":open", s("OPEN"))
                        .expression_attribute_values(":max", n(joining.max_members))
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(
                            ":m",
                            AttributeValue::L(vec![self.encode_member(&joining.member)?]),
                        )
                        .expression_attribute_values(":one", n(1));
                    if !joining.satisfies.is_empty() {
                        set.push_str(", satisfied :sat");
                        update = update.expression_attribute_values(
                            ":sat",
                            AttributeValue::Ns(
                                joining.satisfies.iter().map(u32::to_string).collect(),
                            ),
                        );
                    }
                    let update = self.build(update.update_expression(set).build())?;
                    vec![
                        self.put_absent(self.encode_item(&record)?)?,
                        TransactWriteItem::builder().update(update).build(),
                    ]
                }
            };
            let applied = self.transact(items).await?;
            if !applied {
                // Our own write whose answer was lost carries our token; another record with
                // the member's id is a duplicate; neither: the pointer or the batch changed.
                match self.read(&record.id).await? {
                    Some(stored) if stored.claim_token == record.claim_token => {
                        record = stored;
                    }
                    Some(stored) => return Ok(Joined::Duplicate(stored)),
                    None => {
                        if let Some(batch_id) = &open
                            && let Some(batch) = self.get_batch(batch_id).await?
                            && batch.state == BatchState::Open
                            && batch.member_count >= joining.max_members
                        {
                            return Ok(Joined::Full(batch));
                        }
                        continue;
                    }
                }
            }
            let batch_id = record.batch_id.clone().unwrap_or_default();
            let batch = self.batch_head(&batch_id).await?.ok_or_else(|| {
                ExecutionError::Inconsistent(format!(
                    "member {} joined batch {batch_id}, which does not exist",
                    record.id
                ))
            })?;
            return Ok(Joined::Joined { record, batch });
        }
        Err(ExecutionError::store(
            "joining a batch",
            &self.table,
            format!(
                "{CONTENTION_TRIES} tries met concurrent changes of the open batch of rule {rule_id}"
            ),
        ))
    }

    async fn close(&self, closing: Closing) -> Result<CloseOutcome, ExecutionError> {
        for _ in 0..CONTENTION_TRIES {
            let Some(batch) = self.get_batch(&closing.batch_id).await? else {
                return Err(ExecutionError::NotFound(closing.batch_id.clone()));
            };
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
            let mut condition = "#state = :open".to_string();
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("id", s(batch_item_id(&batch.id)))
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":open", s(batch.state.as_str()))
                .expression_attribute_values(":state", s(closing.state.as_str()))
                .expression_attribute_values(":reason", s(closing.reason.as_str()))
                .expression_attribute_values(":now", n(now));
            let mut set =
                "SET #state = :state, close_reason = :reason, closed_at = :now".to_string();
            if let Some(t) = closing.unchanged_since {
                condition.push_str(" AND last_member_at = :last");
                update = update.expression_attribute_values(":last", n(t));
            }
            if let Some(execution) = &closing.execution {
                set.push_str(", execution_id = :execution");
                update = update.expression_attribute_values(":execution", s(&execution.id));
            }
            let update = self.build(
                update
                    .update_expression(format!("{set} REMOVE #status, created_at"))
                    .condition_expression(condition)
                    .build(),
            )?;
            let delete = self.build(
                Delete::builder()
                    .table_name(&self.table)
                    .key("id", s(pointer_item_id(&batch.rule_id, &batch.group)))
                    .condition_expression("batch_id = :batch")
                    .expression_attribute_values(":batch", s(&batch.id))
                    .build(),
            )?;
            let mut items = vec![TransactWriteItem::builder().update(update).build()];
            // An expired batch's pointer went with its expiry.
            if !was_expired {
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
            if let Some(execution) = &closing.execution {
                items.push(self.put_absent(self.encode_item(execution)?)?);
            }
            if self.transact(items).await? {
                let mut closed = batch;
                closed.state = closing.state;
                closed.close_reason = Some(closing.reason);
                closed.closed_at = Some(now);
                closed.execution_id = closing.execution.as_ref().map(|e| e.id.clone());
                return Ok(CloseOutcome::Closed(closed));
            }
            // Cancelled: read again (closed by another, a member joined, or a concurrent
            // transaction on the same items).
        }
        Err(ExecutionError::store(
            "closing a batch",
            &self.table,
            format!(
                "{CONTENTION_TRIES} tries met concurrent changes of batch {}",
                closing.batch_id
            ),
        ))
    }

    async fn get_batch(&self, id: &str) -> Result<Option<Batch>, ExecutionError> {
        self.read_item(batch_item_id(id))
            .await?
            .map(|item| self.decode_batch(&item))
            .transpose()
    }

    async fn open_batches(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
    ) -> Result<Vec<Batch>, ExecutionError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = after.map(|(opened_at, id)| {
            HashMap::from([
                ("id".to_string(), s(batch_item_id(&id))),
                ("status".to_string(), s(BATCH_OPEN_STATUS)),
                ("created_at".to_string(), n(opened_at)),
            ])
        });
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EXECUTIONS_STATUS_INDEX)
                .scan_index_forward(true)
                .key_condition_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(BATCH_OPEN_STATUS))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| ExecutionError::store("Query", &self.table, e))?;
            for item in page.items.unwrap_or_default() {
                // The index may lag the close by a moment: what it names is read again.
                let Some(AttributeValue::S(id)) = item.get("batch_id") else {
                    continue;
                };
                if let Some(batch) = self.get_batch(id).await?
                    && batch.state == BatchState::Open
                {
                    out.push(batch);
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn list_batches(&self, filter: &BatchFilter) -> Result<Vec<Batch>, ExecutionError> {
        let mut out = Vec::new();
        if filter.open_only {
            out = self.open_batches(usize::MAX, None).await?;
        } else {
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(id, :prefix)")
                    .expression_attribute_values(":prefix", s("batch#"))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| ExecutionError::store("Scan", &self.table, e))?;
                for item in page.items.unwrap_or_default() {
                    out.push(self.decode_batch(&item)?);
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        if let Some(rule) = &filter.rule_id {
            out.retain(|b| &b.rule_id == rule);
        }
        out.sort_by(|a, b| (b.opened_at, &b.id).cmp(&(a.opened_at, &a.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }
}
