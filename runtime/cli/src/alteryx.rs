//! `alteryx-router workflows list` and `jobs submit|get`: talk to Alteryx Server directly with
//! the same credentials the Lambda uses.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::output;
use alteryx_router_core::alteryx::{
    AlteryxClient, ClientOptions, Job, JobRequest, Priority, QuestionValue,
};
use alteryx_router_core::config::Settings;

/// Where the credentials come from.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Secrets Manager secret in the recipe's layout; without it ALTERYX_URL/ALTERYX_KEY/ALTERYX_SECRET are used.
    #[arg(long, env = "ALTERYX_SECRET_ID")]
    pub secret_id: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowsCmd {
    /// List the workflows these credentials can run (v1: your studio's; v3: all).
    List,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCmd {
    /// Queue a job.
    Submit {
        /// The workflow (appId in v1, workflow id in v3).
        #[arg(long)]
        workflow: String,
        /// A question value, NAME=VALUE; repeat for more.
        #[arg(long = "question", short = 'q', value_parser = parse_question)]
        questions: Vec<QuestionValue>,
        /// low, medium, high or critical.
        #[arg(long)]
        priority: Option<Priority>,
        /// Wait until the job finishes and print its outcome.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        wait_timeout: u64,
    },
    /// Show one job: status, disposition, messages, outputs.
    Get { id: String },
}

fn parse_question(s: &str) -> Result<QuestionValue, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if name.trim().is_empty() {
        return Err(format!("`{s}`: the question name is empty"));
    }
    Ok(QuestionValue {
        name: name.trim().to_string(),
        value: value.to_string(),
    })
}

async fn client(server: &ServerArgs) -> anyhow::Result<AlteryxClient> {
    let mut settings = Settings::from_env()?;
    let config = match &server.secret_id {
        Some(id) => {
            settings.default_secret_id = Some(id.clone());
            settings.env_credentials = None;
            settings
                .credential_source()
                .await
                .server_config(None)
                .await?
        }
        None => settings
            .env_credentials
            .context("no --secret-id and no ALTERYX_URL/ALTERYX_KEY/ALTERYX_SECRET")?,
    };
    Ok(AlteryxClient::new(config, ClientOptions::default())?)
}

pub async fn run_workflows(
    cmd: WorkflowsCmd,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let WorkflowsCmd::List = cmd;
    let client = client(server).await?;
    let workflows = client.list_workflows().await?;
    if json {
        return output::print_json(&workflows);
    }
    let mut t = output::table(&["id", "name", "file", "version", "uploaded"]);
    for w in &workflows {
        t.add_row(vec![
            w.id.clone(),
            w.name.clone(),
            w.file_name.clone().unwrap_or_default(),
            w.version.clone().unwrap_or_default(),
            w.upload_date.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!(
        "{} workflow(s) at {}",
        workflows.len(),
        client.config().base_url
    );
    Ok(())
}

pub async fn run_jobs(cmd: JobsCmd, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let client = client(server).await?;
    match cmd {
        JobsCmd::Submit {
            workflow,
            questions,
            priority,
            wait,
            wait_timeout,
        } => {
            let mut job = client
                .submit_job(
                    &workflow,
                    &JobRequest {
                        questions,
                        priority,
                        ..Default::default()
                    },
                )
                .await?;
            if wait {
                let deadline = Instant::now() + Duration::from_secs(wait_timeout);
                while !job.is_finished() {
                    if Instant::now() > deadline {
                        print_job(&job, json)?;
                        bail!("job {} still {} after {wait_timeout} s", job.id, job.status);
                    }
                    tokio::time::sleep(
                        Duration::from_secs(2).min(Duration::from_secs(wait_timeout)),
                    )
                    .await;
                    job = client.get_job(&job.id).await?;
                }
            }
            print_job(&job, json)?;
            if wait && !job.succeeded() {
                bail!(
                    "job {} ended {}",
                    job.id,
                    job.disposition
                        .as_deref()
                        .unwrap_or("without a disposition")
                );
            }
            Ok(())
        }
        JobsCmd::Get { id } => print_job(&client.get_job(&id).await?, json),
    }
}

fn print_job(job: &Job, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(job);
    }
    let mut t = output::table(&["field", "value"]);
    t.add_row(vec!["id".to_string(), job.id.clone()]);
    t.add_row(vec![
        "workflow".to_string(),
        job.workflow_id.clone().unwrap_or_default(),
    ]);
    t.add_row(vec!["status".to_string(), job.status.clone()]);
    t.add_row(vec![
        "disposition".to_string(),
        job.disposition.clone().unwrap_or_default(),
    ]);
    t.add_row(vec![
        "created".to_string(),
        job.create_date.clone().unwrap_or_default(),
    ]);
    t.add_row(vec![
        "messages".to_string(),
        job.messages
            .iter()
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
            .join("\n"),
    ]);
    t.add_row(vec![
        "outputs".to_string(),
        job.outputs
            .iter()
            .map(|o| format!("{} {}", o.id, o.name.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n"),
    ]);
    println!("{t}");
    Ok(())
}
