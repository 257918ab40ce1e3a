//! The DynamoDB execution store (`EXECUTIONS_TABLE`).
//!
//! Every state change is a conditional `PutItem`: a claim succeeds only where no record exists
//! (`attribute_not_exists(id)`), a takeover or an update only where the record still has the
//! status and attempt the writer read. Of any number of concurrent writers exactly one wins;
//! the others see the winner's record. `SUBMITTED` executions are found through the
//! `status-created_at-index` GSI, never by scanning the table.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    Claim, Execution, ExecutionError, ExecutionStatus, ExecutionStore, ListFilter, check_retryable,
    claimable, now_unix, taken_over,
};
use crate::tables::EXECUTIONS_STATUS_INDEX;

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

enum Put {
    Written,
    ConditionFailed,
}

impl DynamoExecutionStore {
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
    async fn put_new(&self, record: &Execution) -> Result<Put, ExecutionError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode_item(record)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Put::Written),
            Err(e) if is_condition_failure(&e) => Ok(Put::ConditionFailed),
            Err(e) => Err(ExecutionError::store("PutItem", &self.table, e)),
        }
    }

    /// Put `record` if the stored item still has `status` and `attempt`.
    async fn put_if(
        &self,
        record: &Execution,
        status: ExecutionStatus,
        attempt: u32,
    ) -> Result<Put, ExecutionError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode_item(record)?))
            .condition_expression("#status = :status AND attempt = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(":attempt", AttributeValue::N(attempt.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Put::Written),
            Err(e) if is_condition_failure(&e) => Ok(Put::ConditionFailed),
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

    async fn query_status(
        &self,
        filter: &ListFilter,
        status: ExecutionStatus,
    ) -> Result<Vec<Execution>, ExecutionError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EXECUTIONS_STATUS_INDEX)
                .scan_index_forward(false)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
                .set_exclusive_start_key(start.take());
            query = match filter.since {
                Some(since) => query
                    .key_condition_expression("#status = :status AND created_at >= :since")
                    .expression_attribute_values(":since", AttributeValue::N(since.to_string())),
                None => query.key_condition_expression("#status = :status"),
            };
            if let Some(rule) = &filter.rule_id {
                query = query
                    .filter_expression("rule_id = :rule")
                    .expression_attribute_values(":rule", AttributeValue::S(rule.clone()));
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
                let e = self.decode_item(item)?;
                if filter.since.is_some_and(|s| e.created_at < s)
                    || filter.rule_id.as_ref().is_some_and(|r| &e.rule_id != r)
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
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        if let Some(l) = filter.limit {
            out.truncate(l);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ExecutionStore for DynamoExecutionStore {
    async fn claim(&self, new: Execution, lease: Duration) -> Result<Claim, ExecutionError> {
        let now = now_unix();
        let mut fresh = new;
        fresh.status = ExecutionStatus::Claimed;
        fresh.lease_until = Some(now + lease.as_secs() as i64);
        if let Put::Written = self.put_new(&fresh).await? {
            return Ok(Claim::Acquired(fresh));
        }
        let Some(existing) = self.read(&fresh.id).await? else {
            // Deleted between our write and read (TTL expiry): try once more from scratch.
            return match self.put_new(&fresh).await? {
                Put::Written => Ok(Claim::Acquired(fresh)),
                Put::ConditionFailed => self
                    .read(&fresh.id)
                    .await?
                    .map(Claim::Duplicate)
                    .ok_or_else(|| {
                        ExecutionError::Inconsistent(format!(
                            "execution {} exists for a conditional write and not for a consistent read",
                            fresh.id
                        ))
                    }),
            };
        };
        if !claimable(&existing, now) {
            return Ok(Claim::Duplicate(existing));
        }
        let next = taken_over(&existing, lease, now);
        match self
            .put_if(&next, existing.status, existing.attempt)
            .await?
        {
            Put::Written => Ok(Claim::Acquired(next)),
            Put::ConditionFailed => Ok(Claim::Duplicate(
                self.read(&existing.id).await?.unwrap_or(existing),
            )),
        }
    }

    async fn update(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError> {
        let mut record = record.clone();
        record.updated_at = now_unix();
        match self
            .put_if(&record, expected_status, record.attempt)
            .await?
        {
            Put::Written => Ok(()),
            Put::ConditionFailed => Err(ExecutionError::Conflict {
                id: record.id.clone(),
                expected: expected_status,
                attempt: record.attempt,
            }),
        }
    }

    async fn claim_retry(&self, id: &str, lease: Duration) -> Result<Execution, ExecutionError> {
        let existing = self
            .read(id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(id.to_string()))?;
        check_retryable(&existing)?;
        let mut next = taken_over(&existing, lease, now_unix());
        next.message = None;
        match self
            .put_if(&next, existing.status, existing.attempt)
            .await?
        {
            Put::Written => Ok(next),
            Put::ConditionFailed => Err(ExecutionError::Conflict {
                id: id.to_string(),
                expected: existing.status,
                attempt: existing.attempt,
            }),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError> {
        self.read(id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError> {
        match filter.status {
            Some(status) => self.query_status(filter, status).await,
            None => self.scan_all(filter).await,
        }
    }
}
