//! `alteryx-router tables create|spec`: the DynamoDB tables for non-SAM users and local emulators.

use anyhow::Context as _;

use crate::output;
use alteryx_router_core::tables::{create_tables, executions_table, rules_table};

#[derive(Debug, clap::Subcommand)]
pub enum TablesCmd {
    /// Create the tables named by RULES_TABLE and EXECUTIONS_TABLE (idempotent).
    Create,
    /// Print the table definitions (the schema template.yaml declares).
    Spec,
}

pub async fn run(cmd: TablesCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        TablesCmd::Spec => output::print_json(&serde_json::json!({
            "rules": rules_table(),
            "executions": executions_table(),
        })),
        TablesCmd::Create => {
            let settings = alteryx_router_core::config::Settings::from_env()?;
            let rules = match settings.rules {
                Some(alteryx_router_core::config::RulesLocation::Table(t)) => t,
                _ => anyhow::bail!("RULES_TABLE is not set"),
            };
            let executions = settings
                .executions_table
                .context("EXECUTIONS_TABLE is not set")?;
            let sdk = alteryx_router_core::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let done = create_tables(&client, &rules, &executions).await?;
            if json {
                output::print_json(&done)
            } else {
                for line in done {
                    println!("{line}");
                }
                Ok(())
            }
        }
    }
}
