//! Decisions made with the Approve/Reject buttons of a Slack approval message, through the one
//! decision path ([`crate::approval::decide`]).
//!
//! Slack's interaction request is trusted only as far as it is checked:
//! - its signature (HMAC-SHA256 of `v0:{timestamp}:{body}` with the app's signing secret) must
//!   verify and its timestamp be within five minutes of now; a request that fails either is
//!   refused `Unauthenticated` before anything is read from it;
//! - it is used once: its replay key is written to the keys table on first use, and a second
//!   delivery of the same request is refused;
//! - the Slack user must be listed in `notifications.slack_approvers`, which names the identity
//!   (an assumed-role session or IAM user ARN) the decision is made as; that identity then goes
//!   through the same checks as one STS authenticated: the escalation role of the level waited
//!   for, one person one approval, the two-person rule;
//! - the button's value (incident, step, plan hash) only says what the clicker wants decided:
//!   the decision holds only if the stored request waits for that step with that plan hash.
//!
//! A refusal after the signature verified (an unknown Slack user) is audited on the incident
//! the button names, as every refused decision is.

use std::collections::BTreeMap;

use ir_chat::Secret;
use ir_chat::slack::interaction::{ApprovalChoice, BlockActions, parse_interaction};
use ir_chat::slack::verify::verify_headers;
use ir_core::approval::Verdict;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::approval::{
    ApproverPolicy, DecideError, DecisionRequest, Resumed, decide, refuse_unauthenticated,
};
use crate::outlets::SlackSecret;
use ir_aws::Clients;
use ir_aws::secrets::read_json;
use ir_aws::store::{Replays, TableNames};

/// What the deployment set up for Slack decisions: the app's signing secret and who each Slack
/// user decides as.
#[derive(Debug, Clone)]
pub struct SlackApprovals {
    signing_secret: Secret,
    users: BTreeMap<String, String>,
}

impl SlackApprovals {
    pub fn new(signing_secret: Secret, users: BTreeMap<String, String>) -> SlackApprovals {
        SlackApprovals {
            signing_secret,
            users,
        }
    }

    /// The `signing_secret` of the Slack secret `arn` (the one `ir-notify` posts with, see
    /// [`crate::outlets`]) and `users` (`notifications.slack_approvers`).
    ///
    /// # Errors
    /// The secret cannot be read, has the wrong shape, or has no signing secret.
    pub async fn load(
        clients: &Clients,
        arn: &str,
        users: BTreeMap<String, String>,
    ) -> Result<SlackApprovals, String> {
        let secret: SlackSecret = read_json(clients, arn).await.map_err(|e| e.to_string())?;
        let signing_secret = secret
            .signing_secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("secret {arn} has no signing_secret"))?;
        Ok(SlackApprovals::new(Secret::new(signing_secret), users))
    }
}

/// A Slack interaction request as the endpoint received it: its headers (any case) and its raw
/// body (base64 when the endpoint said so).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackRequest {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

/// What a Slack decision did, and the click it came from (for updating the message).
#[derive(Debug, Clone)]
pub struct SlackDecided {
    pub resumed: Resumed,
    pub click: BlockActions,
}

/// Decides the approval a Slack button click asks for (see the module docs).
///
/// # Errors
/// `Unauthenticated` for a signature that does not verify, a stale or replayed request, Slack
/// decisions not configured, or a Slack user not listed; `InvalidInput` for a payload that is
/// not an approval button click; then every refusal of [`decide`].
pub async fn decide_from_slack(
    clients: &Clients,
    names: &TableNames,
    policy: &ApproverPolicy,
    slack: Option<&SlackApprovals>,
    request: &SlackRequest,
    now: OffsetDateTime,
) -> Result<SlackDecided, DecideError> {
    let slack = slack.ok_or_else(|| {
        DecideError::Unauthenticated(
            "decisions from Slack are not configured (no signing secret)".to_owned(),
        )
    })?;
    let body = if request.is_base64_encoded {
        aws_smithy_types::base64::decode(&request.body)
            .map_err(|_| DecideError::InvalidInput("the body is not base64".to_owned()))?
    } else {
        request.body.clone().into_bytes()
    };
    let verified = verify_headers(
        &slack.signing_secret,
        request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &body,
        now,
    )
    .map_err(|e| DecideError::Unauthenticated(format!("Slack request: {e}")))?;
    let first = Replays::new(clients.clone(), names)
        .first_use(&verified.replay_key, now)
        .await
        .map_err(DecideError::Store)?;
    if !first {
        return Err(DecideError::Unauthenticated(
            "this Slack request was already used (a replay)".to_owned(),
        ));
    }
    let click = parse_interaction(&body)
        .map_err(|e| DecideError::InvalidInput(format!("Slack payload: {e}")))?;
    let (choice, asked) = click
        .approval()
        .map_err(|e| DecideError::InvalidInput(format!("Slack payload: {e}")))?;
    let decision = DecisionRequest {
        incident_id: asked.incident_id().to_owned(),
        step_id: asked.step_id().to_owned(),
        decision: match choice {
            ApprovalChoice::Approve => Verdict::Approve,
            ApprovalChoice::Reject => Verdict::Reject,
        },
        reason: Some(format!(
            "decided in Slack by {} ({})",
            click.user_name.as_deref().unwrap_or("unnamed user"),
            click.user_id
        )),
        plan_hash: Some(asked.plan_hash().to_owned()),
    };
    let Some(identity) = slack.users.get(&click.user_id) else {
        let why = format!(
            "Slack user {} is not in notifications.slack_approvers",
            click.user_id
        );
        return Err(refuse_unauthenticated(clients, names, &decision, &why, now).await);
    };
    let resumed = decide(clients, names, policy, &decision, identity, now).await?;
    Ok(SlackDecided { resumed, click })
}
