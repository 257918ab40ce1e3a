//! DynamoDB table definitions, the single source of truth for `alteryx-router tables create`
//! and for the tables in `template.yaml` (a test keeps the two in step).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification,
};
use serde::Serialize;

/// The GSI the tracker queries for `SUBMITTED` executions.
pub const EXECUTIONS_STATUS_INDEX: &str = "status-created_at-index";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: &'static str,
    /// `S` or `N`.
    #[serde(rename = "type")]
    pub attr_type: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
    pub projection: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableSpec {
    /// The logical name in template.yaml.
    pub logical_name: &'static str,
    /// The environment variable that names the table.
    pub env_var: &'static str,
    pub partition_key: KeyAttr,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<&'static str>,
    /// The table's DynamoDB stream (`KEYS_ONLY`, ...), when it has one.
    pub stream_view: Option<&'static str>,
}

pub fn rules_table() -> TableSpec {
    TableSpec {
        logical_name: "RulesTable",
        env_var: "RULES_TABLE",
        partition_key: KeyAttr {
            name: "id",
            attr_type: "S",
        },
        indexes: Vec::new(),
        ttl_attribute: None,
        // Feeds the function that republishes the rules snapshot after every change.
        stream_view: Some("KEYS_ONLY"),
    }
}

pub fn executions_table() -> TableSpec {
    TableSpec {
        logical_name: "ExecutionsTable",
        env_var: "EXECUTIONS_TABLE",
        partition_key: KeyAttr {
            name: "id",
            attr_type: "S",
        },
        indexes: vec![IndexSpec {
            name: EXECUTIONS_STATUS_INDEX,
            partition_key: KeyAttr {
                name: "status",
                attr_type: "S",
            },
            sort_key: Some(KeyAttr {
                name: "created_at",
                attr_type: "N",
            }),
            projection: "ALL",
        }],
        ttl_attribute: Some("expires_at"),
        stream_view: None,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("table {table}: {message}")]
pub struct TableError {
    pub table: String,
    pub message: String,
}

fn attr_type(t: &str) -> ScalarAttributeType {
    match t {
        "N" => ScalarAttributeType::N,
        _ => ScalarAttributeType::S,
    }
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| e.to_string())
}

/// Create one table from its spec (on-demand billing), wait until it is active, and enable
/// TTL. An existing table is reported as such, not as an error.
pub async fn create_table(
    client: &Client,
    name: &str,
    spec: &TableSpec,
) -> Result<String, TableError> {
    let fail = |message: String| TableError {
        table: name.to_string(),
        message,
    };
    let mut attrs = vec![spec.partition_key.clone()];
    for index in &spec.indexes {
        attrs.push(index.partition_key.clone());
        attrs.extend(index.sort_key.clone());
    }
    attrs.sort_by_key(|a| a.name);
    attrs.dedup_by_key(|a| a.name);
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.partition_key.name, KeyType::Hash).map_err(fail)?);
    for a in &attrs {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a.name)
                .attribute_type(attr_type(a.attr_type))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    if let Some(view) = spec.stream_view {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    for index in &spec.indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key.name, KeyType::Hash).map_err(fail)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            );
        if let Some(sort) = &index.sort_key {
            gsi = gsi.key_schema(key(sort.name, KeyType::Range).map_err(fail)?);
        }
        request = request.global_secondary_indexes(gsi.build().map_err(|e| fail(e.to_string()))?);
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            return Ok(format!("{name}: exists"));
        }
        Err(e) => return Err(fail(DisplayErrorContext(e).to_string())),
    }
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| fail(DisplayErrorContext(e).to_string()))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    if let Some(ttl) = spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| fail(DisplayErrorContext(e).to_string()))?;
    }
    Ok(format!("{name}: created"))
}

/// Create the rules and executions tables.
pub async fn create_tables(
    client: &Client,
    rules: &str,
    executions: &str,
) -> Result<Vec<String>, TableError> {
    Ok(vec![
        create_table(client, rules, &rules_table()).await?,
        create_table(client, executions, &executions_table()).await?,
    ])
}
