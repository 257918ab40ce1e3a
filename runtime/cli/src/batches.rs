//! `alteryx-router batches`: the batches of batch rules — list them (`--open`, `--rule`), show
//! one with its members, and close one now by hand (the same close transaction the router and
//! the tracker use, `close_reason` `operator`; an `EXPIRED` batch may be run this way too).

use alteryx_router_core::config::Settings;
use alteryx_router_core::executions::batch::{Batch, BatchFilter, BatchStore, CloseReason};
use alteryx_router_core::executions::{ExecutionStore, format_unix};
use alteryx_router_core::router::BatchClosed;
use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum BatchesCmd {
    /// List batches, newest first.
    List {
        /// Only open batches.
        #[arg(long)]
        open: bool,
        /// Only this rule's.
        #[arg(long)]
        rule: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one batch with its members and its execution.
    Show { id: String },
    /// Close an open (or expired) batch now and start its job.
    Close { id: String },
}

fn batches(store: &dyn ExecutionStore) -> anyhow::Result<&dyn BatchStore> {
    store
        .batches()
        .context("this execution store keeps no batches")
}

async fn get(store: &dyn ExecutionStore, id: &str) -> anyhow::Result<Batch> {
    match batches(store)?.get_batch(id).await? {
        Some(batch) => Ok(batch),
        None => bail!(
            "no batch with id `{id}` (ids look like `rule-id:batch-0123456789abcdef`; see `batches list`)"
        ),
    }
}

pub async fn run(cmd: BatchesCmd, json: bool) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match cmd {
        BatchesCmd::List { open, rule, limit } => {
            let store = settings.execution_store().await?;
            let list = batches(store.as_ref())?
                .list_batches(&BatchFilter {
                    open_only: open,
                    rule_id: rule,
                    limit: Some(limit),
                })
                .await?;
            if json {
                return output::print_json(&list.iter().map(Listed::of).collect::<Vec<_>>());
            }
            if list.is_empty() {
                println!("no batches");
                return Ok(());
            }
            let mut t = output::table(&[
                "batch",
                "rule",
                "group",
                "state",
                "members",
                "satisfied",
                "opened",
                "last member",
                "closed",
            ]);
            for b in &list {
                t.add_row(vec![
                    b.id.clone(),
                    b.rule_id.clone(),
                    b.group.clone(),
                    b.state.to_string(),
                    b.member_count.to_string(),
                    b.satisfied.len().to_string(),
                    format_unix(b.opened_at),
                    format_unix(b.last_member_at),
                    closed_text(b),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        BatchesCmd::Show { id } => {
            let store = settings.execution_store().await?;
            let batch = get(store.as_ref(), &id).await?;
            let execution = match &batch.execution_id {
                Some(e) => store.get(e).await?,
                None => None,
            };
            if json {
                return output::print_json(&serde_json::json!({
                    "batch": batch,
                    "execution": execution,
                }));
            }
            print_batch(&batch);
            if let Some(e) = execution {
                println!(
                    "execution  {} ({}{}), `executions show {}`",
                    e.id,
                    e.status,
                    e.job_id
                        .as_deref()
                        .map(|j| format!(", job {j}"))
                        .unwrap_or_default(),
                    e.id
                );
            }
            Ok(())
        }
        BatchesCmd::Close { id } => {
            let router = settings.router().await?;
            let batch = get(router.executions().as_ref(), &id).await?;
            let closed = router
                .close_batch(&batch, CloseReason::Operator, router.default_deadline())
                .await?;
            let (batch, outcome) = match closed {
                BatchClosed::Closed { batch, dispatched } => (batch, dispatched),
                BatchClosed::Expired(b) | BatchClosed::Unchanged(b) => {
                    bail!("batch {} is {} and was not closed now", b.id, b.state)
                }
            };
            if json {
                return output::print_json(&serde_json::json!({
                    "batch": batch,
                    "outcome": outcome,
                }));
            }
            println!(
                "closed batch {} ({} member(s)); its execution {}",
                batch.id, batch.member_count, batch.id
            );
            if let Some(o) = outcome {
                println!(
                    "  {}{}{}",
                    o.status,
                    o.job_id.map(|j| format!(", job {j}")).unwrap_or_default(),
                    o.message.map(|m| format!(": {m}")).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

/// A batch in `batches list --json`: without its member list.
#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    rule_id: &'a str,
    group: &'a str,
    state: String,
    member_count: u32,
    satisfied: &'a [u32],
    opened_at: i64,
    last_member_at: i64,
    closed_at: Option<i64>,
    close_reason: Option<CloseReason>,
    execution_id: Option<&'a str>,
}

impl<'a> Listed<'a> {
    fn of(b: &'a Batch) -> Self {
        Self {
            id: &b.id,
            rule_id: &b.rule_id,
            group: &b.group,
            state: b.state.to_string(),
            member_count: b.member_count,
            satisfied: &b.satisfied,
            opened_at: b.opened_at,
            last_member_at: b.last_member_at,
            closed_at: b.closed_at,
            close_reason: b.close_reason,
            execution_id: b.execution_id.as_deref(),
        }
    }
}

fn closed_text(b: &Batch) -> String {
    match (b.closed_at, b.close_reason) {
        (Some(at), Some(reason)) => format!("{} ({reason})", format_unix(at)),
        _ => String::new(),
    }
}

/// A batch in full, for `batches show` and `executions show` of a batch's execution.
pub fn print_batch(b: &Batch) {
    println!("batch      {}", b.id);
    println!("rule       {}", b.rule_id);
    println!("group      {}", b.group);
    println!("state      {}", b.state);
    println!("opened     {}", format_unix(b.opened_at));
    println!("last join  {}", format_unix(b.last_member_at));
    if let Some(text) = Some(closed_text(b)).filter(|t| !t.is_empty()) {
        println!("closed     {text}");
    }
    let satisfied: Vec<String> = b
        .satisfied
        .iter()
        .map(|i| format!("require[{i}]"))
        .collect();
    if !satisfied.is_empty() {
        println!("satisfied  {}", satisfied.join(", "));
    }
    println!("members    {}", b.member_count);
    for m in &b.members {
        println!(
            "  s3://{}/{} ({} bytes, {})",
            m.bucket, m.key, m.size, m.event_time
        );
    }
}
