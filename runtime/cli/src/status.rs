//! `alteryx-router status`: the concurrency groups and their waiting lines — per group its cap
//! (as the rules say), the jobs at Alteryx (slots taken), the executions waiting and since when
//! the oldest waits, and for an outage the next attempt.

use std::collections::BTreeMap;

use alteryx_router_core::config::Settings;
use alteryx_router_core::executions::{format_unix, line, now_unix};

use crate::output;

pub async fn run(json: bool) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let store = settings.execution_store().await?;
    // The caps the rules give; a store without rules still shows its groups and line.
    let mut caps = BTreeMap::new();
    match settings.rule_source().await {
        Ok(source) => {
            for rule in source.rule_set().await?.rules() {
                if let Some(cap) = rule.rule.cap() {
                    caps.insert(cap.group, cap.max_concurrent_jobs);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %alteryx_router_core::error_chain(&e), "no rules: caps unknown")
        }
    }
    let groups = line::group_status(store.as_ref(), &caps).await?;
    if json {
        return output::print_json(&groups);
    }
    if groups.is_empty() {
        println!("no capped rules and nothing waiting");
        return Ok(());
    }
    let now = now_unix();
    let mut t = output::table(&[
        "group",
        "cap",
        "running",
        "waiting",
        "oldest wait",
        "next attempt (outage)",
    ]);
    for g in &groups {
        t.add_row(vec![
            g.group.clone(),
            g.cap.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            g.running.to_string(),
            match (g.waiting_for_alteryx, g.line_at) {
                (0, None) => g.waiting.to_string(),
                (0, Some(_)) => format!("{} (new uploads join the line)", g.waiting),
                (n, _) => format!("{} ({n} for Alteryx)", g.waiting),
            },
            g.oldest_waiting_since
                .map(|s| format!("{} ({}s)", format_unix(s), now - s))
                .unwrap_or_default(),
            g.next_attempt_at.map(format_unix).unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}
