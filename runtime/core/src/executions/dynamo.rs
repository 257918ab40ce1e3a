//! The DynamoDB execution store (`EXECUTIONS_TABLE`).
//!
//! Every state change is a conditional write: a claim succeeds only where no record exists
//! (`attribute_not_exists(id)`), a takeover or an update only where the record still has the
//! status, attempt and claim token the writer read. Of any number of concurrent writers exactly
//! one wins; the others see the winner's record. A condition that fails because the writer's
//! own earlier try was applied (the SDK retried after a lost answer) is recognised by reading
//! the record back: it is exactly what was written.
//!
//! Recording a job writes the execution and a job ownership item (`job#{job_id}`, no `status`,
//! so the status index never sees it) in one `TransactWriteItems`. A concurrency group's
//! counter is an item too (`group#{name}`: `running`, `cap`, no `status`): the intent of a
//! capped execution increments it (condition `running < cap`) and a write that ends the
//! execution's slot decrements it (condition on the record's `slot_held`), each in one
//! `TransactWriteItems` with the execution record. Executions are found by
//! status through the `status-created_at-index` GSI, never by scanning the table.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};

use super::{
    Claim, Claimant, Execution, ExecutionError, ExecutionStatus, ExecutionStore, Found, GroupUsage,
    LinePlace, ListFilter, SlotGrant, Takeover, check_takeover, group_item_id, job_item_id,
    now_unix, now_unix_ms, on_claim, retried, same_write, taken_over,
};
use crate::tables::EXECUTIONS_STATUS_INDEX;

mod batch;

pub struct DynamoExecutionStore {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn is_condition_failure<R>(e: &SdkError<PutItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

enum Put1 {
    Written,
    ConditionFailed,
}

/// "The stored item still has this status, attempt and claim token."
struct Expect<'a> {
    status: ExecutionStatus,
    attempt: u32,
    token: Option<&'a str>,
}

impl Expect<'_> {
    fn matches(&self, stored: &Execution) -> bool {
        stored.status == self.status
            && stored.attempt == self.attempt
            && stored.claim_token.as_deref() == self.token
    }

    fn expression(&self) -> (String, Vec<(&'static str, AttributeValue)>) {
        let mut values = vec![
            (":status", AttributeValue::S(self.status.as_str().into())),
            (":attempt", AttributeValue::N(self.attempt.to_string())),
        ];
        let token = match self.token {
            Some(t) => {
                values.push((":token", AttributeValue::S(t.to_string())));
                "claim_token = :token"
            }
            None => "attribute_not_exists(claim_token)",
        };
        (
            format!("#status = :status AND attempt = :attempt AND {token}"),
            values,
        )
    }
}

impl DynamoExecutionStore {
    /// The items with these ids (consistent reads, 100 per `BatchGetItem`); missing ones are
    /// simply absent. Unprocessed keys (throttling) are asked again.
    async fn get_items(&self, ids: Vec<String>) -> Result<Vec<Item>, ExecutionError> {
        let mut items = Vec::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("id".to_string(), AttributeValue::S(id.clone()))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| ExecutionError::store("building BatchGetItem", &self.table, e))?,
            );
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| ExecutionError::store("BatchGetItem", &self.table, e))?;
                items.extend(
                    out.responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if request.is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        Ok(items)
    }
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn encode_item(&self, record: &Execution) -> Result<Item, ExecutionError> {
        serde_dynamo::to_item(record).map_err(|e| {
            ExecutionError::store(format!("encoding execution {}", record.id), &self.table, e)
        })
    }

    fn decode_item(&self, item: Item) -> Result<Execution, ExecutionError> {
        let id = match item.get("id") {
            Some(AttributeValue::S(id)) => format!("execution {id}"),
            _ => "an item without a string id".to_string(),
        };
        serde_dynamo::from_item(item)
            .map_err(|e| ExecutionError::store(format!("decoding {id}"), &self.table, e))
    }

    /// Put `record` if no item has its id.
    async fn put_new(&self, record: &Execution) -> Result<Put1, ExecutionError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode_item(record)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Put1::Written),
            Err(e) if is_condition_failure(&e) => Ok(Put1::ConditionFailed),
            Err(e) => Err(ExecutionError::store("PutItem", &self.table, e)),
        }
    }

    /// Put `record` if the stored item is still as `expect` says.
    async fn put_if(
        &self,
        record: &Execution,
        expect: &Expect<'_>,
    ) -> Result<Put1, ExecutionError> {
        let (condition, values) = expect.expression();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode_item(record)?))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status");
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(Put1::Written),
            Err(e) if is_condition_failure(&e) => Ok(Put1::ConditionFailed),
            Err(e) => Err(ExecutionError::store("PutItem", &self.table, e)),
        }
    }

    async fn read(&self, id: &str) -> Result<Option<Execution>, ExecutionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ExecutionError::store("GetItem", &self.table, e))?;
        out.item.map(|item| self.decode_item(item)).transpose()
    }

    /// After a refused conditional write of `record`: fine if the stored record is exactly
    /// it (our own earlier try), a conflict otherwise.
    async fn settle_refused(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        match self.read(&record.id).await? {
            Some(stored) if same_write(&stored, record) => Ok(()),
            Some(_) => Err(ExecutionError::Conflict {
                id: record.id.clone(),
                expected: expected_status,
                attempt: record.attempt,
            }),
            None => Err(ExecutionError::NotFound(record.id.clone())),
        }
    }

    /// Who owns `job_id`, read consistently.
    async fn job_owner(&self, job_id: &str) -> Result<Option<String>, ExecutionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(job_item_id(job_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ExecutionError::store("GetItem", &self.table, e))?;
        Ok(out.item.and_then(|item| match item.get("execution_id") {
            Some(AttributeValue::S(owner)) => Some(owner.clone()),
            _ => None,
        }))
    }

    fn put_request(
        &self,
        item: Item,
        condition: String,
        names: &[(&str, &str)],
        values: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem, ExecutionError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, attr) in names {
            put = put.expression_attribute_names(*name, *attr);
        }
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        let put = put
            .build()
            .map_err(|e| ExecutionError::store("building TransactWriteItems", &self.table, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The group counter's change of one slot, for a transaction with the execution record:
    /// `+1` only while `running < cap` (and notes the cap), `-1` unconditionally (the record's
    /// `slot_held` condition is what makes a release happen once).
    fn group_update(
        &self,
        group: &str,
        acquire: Option<(u32, LinePlace)>,
    ) -> Result<TransactWriteItem, ExecutionError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("id", AttributeValue::S(group_item_id(group)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":group", AttributeValue::S(group.to_string()));
        update = match acquire {
            Some((cap, place)) => update
                .update_expression(
                    "SET running = if_not_exists(running, :zero) + :one, cap = :cap, group_name = :group",
                )
                .condition_expression(match place {
                    LinePlace::InLine => "attribute_not_exists(running) OR running < :cap",
                    LinePlace::Arrival => {
                        "(attribute_not_exists(running) OR running < :cap) AND attribute_not_exists(line_at)"
                    }
                })
                .expression_attribute_values(":cap", AttributeValue::N(cap.to_string())),
            None => update.update_expression(
                "SET running = if_not_exists(running, :one) - :one, group_name = :group",
            ),
        };
        let update = update
            .build()
            .map_err(|e| ExecutionError::store("building TransactWriteItems", &self.table, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The execution's put, conditional on what the writer read (`expect`), plus `extra`.
    fn conditional_put(
        &self,
        record: &Execution,
        expect: &Expect<'_>,
        extra: &str,
        extra_values: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem, ExecutionError> {
        let (condition, mut values) = expect.expression();
        values.extend(extra_values);
        self.put_request(
            self.encode_item(record)?,
            format!("{condition}{extra}"),
            &[("#status", "status")],
            values,
        )
    }

    /// Write `record` and change its group's counter in one transaction. `Ok(true)` when it was
    /// applied; `Ok(false)` when it was cancelled (a condition failed, or a concurrent
    /// transaction on the same items): the caller reads what is there.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, ExecutionError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(ExecutionError::store("TransactWriteItems", &self.table, e)),
        }
    }

    /// `record` (which holds no slot any more) over a stored record that holds one, and its
    /// group's slot given back, once.
    async fn release(
        &self,
        record: &Execution,
        group: &str,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let expect = Expect {
            status: expected_status,
            attempt: record.attempt,
            token: record.claim_token.as_deref(),
        };
        let items = vec![
            self.conditional_put(
                record,
                &expect,
                " AND slot_held = :held",
                vec![(":held", AttributeValue::Bool(true))],
            )?,
            self.group_update(group, None)?,
        ];
        if self.transact(items).await? {
            return Ok(());
        }
        match self.read(&record.id).await? {
            Some(stored) if same_write(&stored, record) => Ok(()),
            Some(stored) if expect.matches(&stored) && !stored.slot_held => {
                // Nothing to give back (it never held one): an ordinary write.
                match self.put_if(record, &expect).await? {
                    Put1::Written => Ok(()),
                    Put1::ConditionFailed => self.settle_refused(record, expected_status).await,
                }
            }
            Some(stored) if expect.matches(&stored) => Err(ExecutionError::store(
                "TransactWriteItems",
                &self.table,
                "the transaction met a concurrent one on the same items",
            )),
            Some(_) => Err(ExecutionError::Conflict {
                id: record.id.clone(),
                expected: expected_status,
                attempt: record.attempt,
            }),
            None => Err(ExecutionError::NotFound(record.id.clone())),
        }
    }

    async fn query_status(
        &self,
        filter: &ListFilter,
        status: ExecutionStatus,
    ) -> Result<Vec<Execution>, ExecutionError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = filter.after.as_ref().map(|(created_at, id)| {
            HashMap::from([
                ("id".to_string(), AttributeValue::S(id.clone())),
                (
                    "status".to_string(),
                    AttributeValue::S(status.as_str().into()),
                ),
                (
                    "created_at".to_string(),
                    AttributeValue::N(created_at.to_string()),
                ),
            ])
        });
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EXECUTIONS_STATUS_INDEX)
                .scan_index_forward(filter.oldest_first)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
                .set_exclusive_start_key(start.take());
            query = match filter.since {
                Some(since) => query
                    .key_condition_expression("#status = :status AND created_at >= :since")
                    .expression_attribute_values(":since", AttributeValue::N(since.to_string())),
                None => query.key_condition_expression("#status = :status"),
            };
            let mut filters = Vec::new();
            if let Some(rule) = &filter.rule_id {
                filters.push("rule_id = :rule");
                query = query.expression_attribute_values(":rule", AttributeValue::S(rule.clone()));
            }
            if let Some(workflow) = &filter.workflow {
                filters.push("workflow = :workflow");
                query = query
                    .expression_attribute_values(":workflow", AttributeValue::S(workflow.clone()));
            }
            if !filters.is_empty() {
                query = query.filter_expression(filters.join(" AND "));
            }
            let page = query
                .send()
                .await
                .map_err(|e| ExecutionError::store("Query", &self.table, e))?;
            for item in page.items.unwrap_or_default() {
                out.push(self.decode_item(item)?);
                if filter.limit.is_some_and(|l| out.len() >= l) {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn scan_all(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| ExecutionError::store("Scan", &self.table, e))?;
            for item in page.items.unwrap_or_default() {
                // Job ownership items (and any other item kind) have no status; open batch
                // items have one for the status index, but are not executions.
                if !item.contains_key("status")
                    || matches!(item.get("id"), Some(AttributeValue::S(id)) if id.starts_with("batch#"))
                {
                    continue;
                }
                let e = self.decode_item(item)?;
                if filter.since.is_some_and(|s| e.created_at < s)
                    || filter.rule_id.as_ref().is_some_and(|r| &e.rule_id != r)
                    || filter.workflow.as_ref().is_some_and(|w| &e.workflow != w)
                {
                    continue;
                }
                out.push(e);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| {
            let order = a
                .created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id));
            if filter.oldest_first {
                order
            } else {
                order.reverse()
            }
        });
        if let Some(l) = filter.limit {
            out.truncate(l);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ExecutionStore for DynamoExecutionStore {
    async fn claim(&self, new: Execution) -> Result<Claim, ExecutionError> {
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
        if let Put1::Written = self.put_new(&fresh).await? {
            return Ok(Claim::Acquired(fresh));
        }
        // A few rounds: each refused write means someone else changed the record meanwhile.
        for _ in 0..3 {
            let Some(existing) = self.read(&fresh.id).await? else {
                // Deleted between our write and read (TTL expiry): from scratch.
                if let Put1::Written = self.put_new(&fresh).await? {
                    return Ok(Claim::Acquired(fresh));
                }
                continue;
            };
            if existing.claim_token == fresh.claim_token {
                // Our own claim, applied by an earlier try whose answer was lost.
                return Ok(Claim::Acquired(existing));
            }
            match on_claim(&existing, now) {
                Found::InProgress => return Ok(Claim::InProgress(existing)),
                Found::Done => return Ok(Claim::Duplicate(existing)),
                Found::Takeover => {}
            }
            let next = taken_over(&existing, &claimant, now);
            let expect = Expect {
                status: existing.status,
                attempt: existing.attempt,
                token: existing.claim_token.as_deref(),
            };
            if let Put1::Written = self.put_if(&next, &expect).await? {
                return Ok(Claim::Acquired(next));
            }
        }
        match self.read(&fresh.id).await? {
            Some(existing) if existing.claim_token == fresh.claim_token => {
                Ok(Claim::Acquired(existing))
            }
            Some(existing) => Ok(match on_claim(&existing, now) {
                Found::Done => Claim::Duplicate(existing),
                _ => Claim::InProgress(existing),
            }),
            None => Err(ExecutionError::Inconsistent(format!(
                "execution {} exists for a conditional write and not for a consistent read",
                fresh.id
            ))),
        }
    }

    async fn update(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let mut record = record.clone();
        record.updated_at = now_unix();
        if record.slot_held && !record.status.may_hold_slot() {
            record.slot_held = false;
            if let Some(group) = record.group.clone() {
                return self.release(&record, &group, expected_status).await;
            }
        }
        let expect = Expect {
            status: expected_status,
            attempt: record.attempt,
            token: record.claim_token.as_deref(),
        };
        match self.put_if(&record, &expect).await? {
            Put1::Written => Ok(()),
            Put1::ConditionFailed => self.settle_refused(&record, expected_status).await,
        }
    }

    async fn record_job(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let Some(job_id) = record.job_id.clone() else {
            return Err(ExecutionError::Inconsistent(format!(
                "execution {}: recording a job without a job id",
                record.id
            )));
        };
        let mut record = record.clone();
        record.updated_at = now_unix();
        let (condition, values) = Expect {
            status: expected_status,
            attempt: record.attempt,
            token: record.claim_token.as_deref(),
        }
        .expression();
        let execution = self.put_request(
            self.encode_item(&record)?,
            condition,
            &[("#status", "status")],
            values,
        )?;
        let ownership = self.put_request(
            HashMap::from([
                ("id".to_string(), AttributeValue::S(job_item_id(&job_id))),
                ("job_id".to_string(), AttributeValue::S(job_id.clone())),
                (
                    "execution_id".to_string(),
                    AttributeValue::S(record.id.clone()),
                ),
                (
                    "expires_at".to_string(),
                    AttributeValue::N(record.expires_at.to_string()),
                ),
            ]),
            "attribute_not_exists(id) OR execution_id = :execution".to_string(),
            &[],
            vec![(":execution", AttributeValue::S(record.id.clone()))],
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(execution)
            .transact_items(ownership)
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        if !matches!(
            e.as_service_error(),
            Some(TransactWriteItemsError::TransactionCanceledException(_))
        ) {
            return Err(ExecutionError::store("TransactWriteItems", &self.table, e));
        }
        // A condition failed (or the transaction met another one). Read what is there
        // instead of trusting the cancellation reasons: our own earlier try is fine.
        match self.read(&record.id).await? {
            Some(stored) if same_write(&stored, &record) => return Ok(()),
            _ => {}
        }
        match self.job_owner(&job_id).await? {
            Some(owner) if owner != record.id => Err(ExecutionError::JobTaken { job_id, owner }),
            _ => match self.read(&record.id).await? {
                Some(stored)
                    if stored.status == expected_status
                        && stored.attempt == record.attempt
                        && stored.claim_token == record.claim_token =>
                {
                    // Nothing refused us: the transaction met a concurrent one. Try again.
                    Err(ExecutionError::store("TransactWriteItems", &self.table, e))
                }
                Some(_) => Err(ExecutionError::Conflict {
                    id: record.id.clone(),
                    expected: expected_status,
                    attempt: record.attempt,
                }),
                None => Err(ExecutionError::NotFound(record.id.clone())),
            },
        }
    }

    async fn claim_retry(
        &self,
        id: &str,
        claimant: &Claimant,
        takeover: Takeover,
    ) -> Result<Execution, ExecutionError> {
        let existing = self
            .read(id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(id.to_string()))?;
        if existing.claim_token.as_deref() == Some(claimant.token.as_str()) {
            // Our own takeover, applied by an earlier try whose answer was lost.
            return Ok(existing);
        }
        let now = now_unix();
        check_takeover(&existing, takeover, now)?;
        let next = retried(&existing, claimant, takeover, now);
        let expect = Expect {
            status: existing.status,
            attempt: existing.attempt,
            token: existing.claim_token.as_deref(),
        };
        match self.put_if(&next, &expect).await? {
            Put1::Written => Ok(next),
            Put1::ConditionFailed => match self.read(id).await? {
                Some(stored) if stored.claim_token == next.claim_token => Ok(stored),
                _ => Err(ExecutionError::Conflict {
                    id: id.to_string(),
                    expected: existing.status,
                    attempt: existing.attempt,
                }),
            },
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError> {
        self.read(id).await
    }

    async fn job_owners(
        &self,
        job_ids: &[String],
    ) -> Result<HashMap<String, String>, ExecutionError> {
        let mut ids: Vec<String> = job_ids.iter().map(|job| job_item_id(job)).collect();
        ids.sort();
        ids.dedup();
        let mut owners = HashMap::new();
        for item in self.get_items(ids).await? {
            if let (Some(AttributeValue::S(job)), Some(AttributeValue::S(owner))) =
                (item.get("job_id"), item.get("execution_id"))
            {
                owners.insert(job.clone(), owner.clone());
            }
        }
        Ok(owners)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        match filter.status {
            Some(status) => self.query_status(filter, status).await,
            None => self.scan_all(filter).await,
        }
    }

    async fn acquire_slot(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
        cap: u32,
        place: LinePlace,
    ) -> Result<SlotGrant, ExecutionError> {
        let Some(group) = record.group.clone() else {
            return Err(ExecutionError::Inconsistent(format!(
                "execution {}: acquiring a slot without a group",
                record.id
            )));
        };
        let mut record = record.clone();
        record.updated_at = now_unix();
        record.slot_held = true;
        let expect = Expect {
            status: expected_status,
            attempt: record.attempt,
            token: record.claim_token.as_deref(),
        };
        let items = vec![
            self.conditional_put(
                &record,
                &expect,
                " AND NOT slot_held = :held",
                vec![(":held", AttributeValue::Bool(true))],
            )?,
            self.group_update(&group, Some((cap, place)))?,
        ];
        if self.transact(items).await? {
            return Ok(SlotGrant::Acquired);
        }
        // Read what is there instead of trusting the cancellation reasons.
        match self.read(&record.id).await? {
            Some(stored) if same_write(&stored, &record) => Ok(SlotGrant::Acquired),
            Some(stored) if expect.matches(&stored) => {
                let usage = self.group_usage(std::slice::from_ref(&group)).await?;
                match usage.get(&group) {
                    Some(u)
                        if u.running >= i64::from(cap)
                            || (place == LinePlace::Arrival && u.line_at.is_some()) =>
                    {
                        Ok(SlotGrant::Full {
                            running: u.running,
                            line_at: u.line_at,
                        })
                    }
                    // Not full: the transaction met a concurrent one. Try again.
                    _ => Err(ExecutionError::store(
                        "TransactWriteItems",
                        &self.table,
                        "the transaction met a concurrent one on the same items",
                    )),
                }
            }
            Some(_) => Err(ExecutionError::Conflict {
                id: record.id.clone(),
                expected: expected_status,
                attempt: record.attempt,
            }),
            None => Err(ExecutionError::NotFound(record.id.clone())),
        }
    }

    async fn group_usage(
        &self,
        groups: &[String],
    ) -> Result<HashMap<String, GroupUsage>, ExecutionError> {
        let mut ids: Vec<String> = groups.iter().map(|g| group_item_id(g)).collect();
        ids.sort();
        ids.dedup();
        let mut usage = HashMap::new();
        for item in self.get_items(ids).await? {
            let number = |name: &str| match item.get(name) {
                Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            };
            if let Some(AttributeValue::S(group)) = item.get("group_name") {
                usage.insert(
                    group.clone(),
                    GroupUsage {
                        group: group.clone(),
                        running: number("running").unwrap_or(0),
                        cap: number("cap").and_then(|c| u32::try_from(c).ok()),
                        line_at: number("line_at"),
                    },
                );
            }
        }
        Ok(usage)
    }

    async fn mark_line(&self, group: &str) -> Result<(), ExecutionError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(group_item_id(group)))
            .update_expression("SET line_at = :now, group_name = :group")
            .expression_attribute_values(":now", AttributeValue::N(now_unix_ms().to_string()))
            .expression_attribute_values(":group", AttributeValue::S(group.to_string()))
            .send()
            .await
            .map_err(|e| ExecutionError::store("UpdateItem", &self.table, e))?;
        Ok(())
    }

    async fn clear_line(&self, group: &str, marked_before: i64) -> Result<bool, ExecutionError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(group_item_id(group)))
            .update_expression("REMOVE line_at")
            .condition_expression("line_at < :before")
            .expression_attribute_values(":before", AttributeValue::N(marked_before.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(ExecutionError::store("UpdateItem", &self.table, e)),
        }
    }

    fn batches(&self) -> Option<&dyn super::batch::BatchStore> {
        Some(self)
    }
}
