//! `ir approve|reject INCIDENT --step STEP [--plan-hash HASH] [--reason TEXT]`: decide a gated
//! step as yourself, through the decision function — the one path to a decision.
//!
//! Your AWS credentials come from the standard chain (environment, `AWS_PROFILE`, SSO, instance
//! role; `AWS_ENDPOINT_URL` is honoured, so the local cloud works too). They sign an STS
//! `GetCallerIdentity` request bound to this decision (incident, step, verdict, plan hash,
//! reason); `ir` invokes the decision function (`IR_DECIDE_APPROVAL_FUNCTION`) with the decision
//! and that proof, and the function has STS authenticate it, checks you against
//! `notifications.approver_roles` (the role the request's escalation level asks, or a higher
//! one), counts you as one person (a step may need several), and resumes the waiting execution
//! once enough people approved. You need
//! `lambda:InvokeFunction` on the decision function and nothing else: no `states:SendTask*`, no
//! table access.

use std::io::Write;

use aws_sdk_lambda::primitives::Blob;
use ir_aws::Clients;
use ir_incident::approval::{DecisionRequest, Resumed, SignedDecision, Verdict};
use serde_json::Value;

use crate::CliError;

/// The environment `ir approve`, `ir reject` and `ir audit verify` read.
pub const ENV_HELP: &str = concat!(
    "Environment:
  IR_DECIDE_APPROVAL_FUNCTION
                      the decision function's name or ARN (`ir approve`, `ir reject`)
  IR_AUDIT_TABLE      the audit table (`ir audit verify`)
  IR_EVIDENCE_BUCKET  the Object Lock evidence bucket holding the audit anchors (`ir audit verify`)
",
    aws_env_help!()
);

/// `ir approve` / `ir reject`.
#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// The incident (`inc-` followed by 20 hex digits).
    pub incident: String,
    /// The gated step waiting for a decision (`isolate-instance`).
    #[arg(long)]
    pub step: String,
    /// The SHA-256 of the plan you decide on (the approval request shows it): the decision holds
    /// only for that plan, and is refused if the plan waiting for a decision is another.
    #[arg(long)]
    pub plan_hash: Option<String>,
    /// Why: kept in the audit chain, and the rejection's cause the state machine records.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The decision function's answer as printed, or the error with its exit code. A second
/// decision that asked for what was already decided is a success that did nothing (exit 0); one
/// that asked for the opposite is a failure (exit 1).
pub fn outcome(verdict: Verdict, answer: &Value) -> Result<String, CliError> {
    if answer["ok"] == Value::Bool(true) {
        let r: Resumed = serde_json::from_value(answer["resumed"].clone())
            .map_err(|e| CliError::Failed(format!("the decision function's answer: {e}")))?;
        return Ok(match r.decision {
            Verdict::Approve if !r.resumed => format!(
                "approval counted: {} step {} (escalation level {}) by {}; {} of {} approvals from different people, waiting for {} more",
                r.incident_id,
                r.step_id,
                r.level,
                r.decided_by,
                r.approvals.len(),
                r.approvals_required,
                (r.approvals_required as usize).saturating_sub(r.approvals.len())
            ),
            Verdict::Approve => format!(
                "approved: {} step {} (escalation level {}) by {}; the waiting execution resumed and the step runs",
                r.incident_id, r.step_id, r.level, r.decided_by
            ),
            Verdict::Reject => format!(
                "rejected: {} step {} (escalation level {}) by {}; the step will not run",
                r.incident_id, r.step_id, r.level, r.decided_by
            ),
        });
    }
    let message = answer["message"]
        .as_str()
        .unwrap_or("the decision function answered without a message")
        .to_owned();
    let same = answer["decisionStatus"].as_str() == Some(verdict.status().as_str());
    match answer["error"].as_str() {
        Some("Conflict") if same => Ok(message),
        Some(name) => match ir_core::ErrorName::parse(name) {
            Some(name) => Err(CliError::named(name, message)),
            None => Err(CliError::Failed(message)),
        },
        None => Err(CliError::Failed(message)),
    }
}

/// Runs `ir approve` (`Verdict::Approve`) or `ir reject`.
pub fn run(verdict: Verdict, args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    crate::aws::check_incident_id(&args.incident)?;
    let function = crate::aws::var("IR_DECIDE_APPROVAL_FUNCTION")?;
    crate::aws::with_clients(async |clients| {
        decide_as_caller(verdict, args, &clients, &function, out).await
    })
}

/// The decision with `clients`' credentials: the proof signed, the decision function invoked,
/// its answer printed.
pub async fn decide_as_caller(
    verdict: Verdict,
    args: &Args,
    clients: &Clients,
    function: &str,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let decision = DecisionRequest {
        incident_id: args.incident.clone(),
        step_id: args.step.clone(),
        decision: verdict,
        reason: args.reason.clone().filter(|r| !r.trim().is_empty()),
        plan_hash: args.plan_hash.clone(),
    };
    // Malformed input is refused before asking AWS anything.
    crate::aws::check_incident_id(&decision.incident_id)?;
    let (proof, caller) = ir_aws::identity::prove(clients, &decision.binding())
        .await
        .map_err(|e| CliError::Failed(format!("who you are (STS GetCallerIdentity): {e}")))?;
    let payload = serde_json::to_vec(&SignedDecision { decision, proof })
        .map_err(|e| CliError::Failed(format!("the decision: {e}")))?;
    let lambda = aws_sdk_lambda::Client::new(clients.sdk_config());
    let invoked = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "invoking the decision function {function}: {}",
                ir_aws::sdk::SdkFailure::new("lambda:Invoke", &e)
            ))
        })?;
    let body = invoked.payload().map(Blob::as_ref).unwrap_or_default();
    if let Some(error) = invoked.function_error() {
        return Err(CliError::Failed(format!(
            "the decision function failed ({error}): {}",
            String::from_utf8_lossy(body)
        )));
    }
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| CliError::Failed(format!("the decision function's answer: {e}")))?;
    if args.json {
        let mut value = answer.clone();
        value["caller"] = Value::String(caller);
        let printed = outcome(verdict, &answer);
        writeln!(out, "{value}").map_err(|e| CliError::Failed(format!("writing output: {e}")))?;
        return printed.map(|_| ());
    }
    let line = outcome(verdict, &answer)?;
    writeln!(out, "{line}").map_err(|e| CliError::Failed(format!("writing output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn already(status: &str) -> Value {
        json!({"ok": false, "status": 409, "error": "Conflict", "decisionStatus": status,
               "message": "nothing done: inc-0123456789abcdef0123 isolate-instance was already approved by alice"})
    }

    #[test]
    fn a_repeated_decision_is_a_no_op_and_a_contrary_one_is_refused() {
        let same = outcome(Verdict::Approve, &already("approved")).unwrap();
        assert!(
            same.contains("nothing done") && same.contains("alice"),
            "{same}"
        );
        let contrary = outcome(Verdict::Reject, &already("approved")).unwrap_err();
        assert!(matches!(contrary, CliError::Refused(_)));
        assert_eq!(contrary.code(), 4);
        assert!(
            contrary.to_string().contains("already approved"),
            "{contrary}"
        );
        let closed = outcome(
            Verdict::Approve,
            &json!({"ok": false, "status": 410, "error": "Conflict", "message": "the approval window has closed: expired"}),
        )
        .unwrap_err();
        assert!(
            closed
                .to_string()
                .starts_with("the approval window has closed")
        );
        assert_eq!(closed.code(), 4);
        let bad = outcome(
            Verdict::Approve,
            &json!({"ok": false, "status": 400, "error": "InvalidInput", "message": "x"}),
        )
        .unwrap_err();
        assert!(matches!(bad, CliError::Invalid(_)));
        assert_eq!(bad.code(), 2);
        let unauthenticated = outcome(
            Verdict::Approve,
            &json!({"ok": false, "status": 401, "error": "AccessDenied", "message": "unauthenticated: no proof"}),
        )
        .unwrap_err();
        assert!(matches!(unauthenticated, CliError::Refused(_)));
        let unknown = outcome(
            Verdict::Approve,
            &json!({"ok": false, "status": 404, "error": "NotFound", "message": "no approval"}),
        )
        .unwrap_err();
        assert_eq!(unknown.code(), 3);
        let broken = outcome(
            Verdict::Approve,
            &json!({"ok": false, "status": 503, "error": "Retryable", "message": "throttled"}),
        )
        .unwrap_err();
        assert_eq!(broken.code(), 1);
    }
}
