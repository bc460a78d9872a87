//! Where a step's chat message and ticket go besides the suite's topic: Slack and Jira, when
//! the deployment gave their credentials.
//!
//! Settings, read once at init (a bad one fails the start, never an invocation):
//! - `IR_SLACK_SECRET_ARN`: a Secrets Manager secret, JSON `{"bot_token": "xoxb-…"}` (Web API:
//!   messages can be updated, e.g. an approval once decided) or `{"webhook_url": "https://…"}`
//!   (one incoming webhook, one channel); `signing_secret` may sit beside them for the
//!   interactions endpoint. `IR_SLACK_API_URL` points the Web API elsewhere (Slack's
//!   government cloud, a test server).
//! - `IR_JIRA_SECRET_ARN`: JSON `{"base_url": "https://acme.atlassian.net", "email": "…",
//!   "api_token": "…"}`; `IR_JIRA_ISSUE_TYPE` (default `Task`).
//!
//! The secrets are held as [`ir_chat::Secret`]s: never in `Debug`, an error or a log line.

use ir_aws::Clients;
use ir_aws::secrets::{SecretError, read_json};
use ir_chat::Secret;
use ir_chat::jira::client::JiraClient;
use ir_chat::slack::client::SlackClient;
use serde::Deserialize;

use ir_actions::action::ActionError;

/// The Slack secret's fields: what posts (a bot token or a webhook URL) and what verifies
/// Slack's requests (the app's signing secret, read by the decision function).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlackSecret {
    #[serde(default)]
    bot_token: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    pub(crate) signing_secret: Option<String>,
}

/// The Jira secret's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JiraSecret {
    base_url: String,
    email: String,
    api_token: String,
}

/// Jira, and the issue type its issues get.
#[derive(Debug, Clone)]
pub struct JiraOutlet {
    pub client: JiraClient,
    pub issue_type: String,
}

/// The outlets a deployment configured; none: the topic only.
#[derive(Debug, Clone, Default)]
pub struct Outlets {
    pub slack: Option<SlackClient>,
    pub jira: Option<JiraOutlet>,
}

fn configuration(e: SecretError) -> ActionError {
    ActionError::Configuration(e.to_string())
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where the outlets' secrets are (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutletSettings {
    pub slack_secret_arn: Option<String>,
    pub slack_api_url: Option<String>,
    pub jira_secret_arn: Option<String>,
    pub jira_issue_type: Option<String>,
}

impl OutletSettings {
    /// `IR_SLACK_SECRET_ARN`, `IR_SLACK_API_URL`, `IR_JIRA_SECRET_ARN`, `IR_JIRA_ISSUE_TYPE`
    /// (empty is unset).
    pub fn from_env() -> OutletSettings {
        OutletSettings {
            slack_secret_arn: var("IR_SLACK_SECRET_ARN"),
            slack_api_url: var("IR_SLACK_API_URL"),
            jira_secret_arn: var("IR_JIRA_SECRET_ARN"),
            jira_issue_type: var("IR_JIRA_ISSUE_TYPE"),
        }
    }
}

impl Outlets {
    /// The outlets the environment names ([`OutletSettings::from_env`]).
    ///
    /// # Errors
    /// As [`Outlets::load`].
    pub async fn from_env(clients: &Clients) -> Result<Outlets, ActionError> {
        Outlets::load(clients, &OutletSettings::from_env()).await
    }

    /// The outlets `settings` names, their secrets read from Secrets Manager.
    ///
    /// # Errors
    /// `Configuration`: a secret that cannot be read or has the wrong shape, a client that
    /// refuses its settings.
    pub async fn load(
        clients: &Clients,
        settings: &OutletSettings,
    ) -> Result<Outlets, ActionError> {
        let mut outlets = Outlets::default();
        if let Some(arn) = &settings.slack_secret_arn {
            let secret: SlackSecret = read_json(clients, arn).await.map_err(configuration)?;
            let client = match (secret.bot_token, secret.webhook_url) {
                (Some(token), _) => SlackClient::web_api(Secret::new(token)),
                (None, Some(url)) => SlackClient::webhook(Secret::new(url)),
                (None, None) => {
                    return Err(ActionError::Configuration(format!(
                        "secret {arn} has neither bot_token nor webhook_url"
                    )));
                }
            }
            .map_err(|e| ActionError::Configuration(format!("Slack from secret {arn}: {e}")))?;
            outlets.slack = Some(match &settings.slack_api_url {
                Some(url) => client.with_base_url(url.clone()),
                None => client,
            });
        }
        if let Some(arn) = &settings.jira_secret_arn {
            let secret: JiraSecret = read_json(clients, arn).await.map_err(configuration)?;
            let client =
                JiraClient::new(secret.base_url, secret.email, Secret::new(secret.api_token))
                    .map_err(|e| {
                        ActionError::Configuration(format!("Jira from secret {arn}: {e}"))
                    })?;
            outlets.jira = Some(JiraOutlet {
                client,
                issue_type: settings
                    .jira_issue_type
                    .clone()
                    .unwrap_or_else(|| "Task".to_owned()),
            });
        }
        Ok(outlets)
    }
}
