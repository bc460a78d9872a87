//! Reading back IAM policy documents.
//!
//! `GetRolePolicy` / `GetUserPolicy` return the document URL-encoded (RFC 3986, `%7B%22Version…`)
//! and the SDK hands it over as is. A JSON document always starts with `{` (or whitespace), and
//! its encoded form always starts with `%`, so a document that does not parse as JSON is decoded
//! once and parsed again; a JSON document is never percent-decoded (it may contain `%`).

use ir_core::action::PolicyPurpose;
use serde_json::Value;

/// The document as JSON, whether it came URL-encoded or not.
pub(crate) fn decode(raw: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str(raw) {
        return Ok(v);
    }
    let decoded = percent_decode(raw).ok_or_else(|| "not JSON and not URL-encoded".to_owned())?;
    serde_json::from_str(&decoded).map_err(|e| format!("URL-decoded document is not JSON: {e}"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `"*"` or `["*"]`.
fn is_wildcard(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => s == "*",
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some("*")),
        _ => false,
    }
}

/// The `aws:TokenIssueTime` of a revoke-sessions statement's condition, if the condition is
/// exactly `DateLessThan {"aws:TokenIssueTime": <time>}`.
fn token_issue_time(condition: Option<&Value>) -> Option<&str> {
    let cond = condition?.as_object()?;
    if cond.len() != 1 {
        return None;
    }
    let date_less_than = cond.get("DateLessThan")?.as_object()?;
    if date_less_than.len() != 1 {
        return None;
    }
    match date_less_than.get("aws:TokenIssueTime")? {
        Value::String(t) => Some(t),
        Value::Array(a) if a.len() == 1 => a.first()?.as_str(),
        _ => None,
    }
}

/// Whether a document still contains the containment's deny: a statement `Deny` of `*` on `*`,
/// unconditional for deny-all, conditioned on `aws:TokenIssueTime` only for revoke-sessions.
/// Other statements do not matter (an explicit deny wins over any allow). Returns the
/// revocation instant for revoke-sessions, `""` for deny-all, or `None` when the deny is gone
/// (the policy was edited).
pub(crate) fn containment_in(purpose: PolicyPurpose, doc: &Value) -> Option<String> {
    let statements: Vec<&Value> = match doc.get("Statement")? {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => return None,
    };
    statements.into_iter().find_map(|s| {
        let deny = s.get("Effect").and_then(Value::as_str) == Some("Deny")
            && is_wildcard(s.get("Action"))
            && is_wildcard(s.get("Resource"))
            && s.get("NotAction").is_none()
            && s.get("NotResource").is_none()
            && s.get("NotPrincipal").is_none();
        if !deny {
            return None;
        }
        match purpose {
            PolicyPurpose::DenyAll => s.get("Condition").is_none().then(String::new),
            PolicyPurpose::RevokeSessions => {
                token_issue_time(s.get("Condition")).map(str::to_owned)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::action::policy_document;
    use serde_json::json;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn documents_decode_encoded_or_not() {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Sid": "a b%c"}]});
        let text = doc.to_string();
        assert_eq!(decode(&text).unwrap(), doc);
        assert_eq!(decode(&encode(&text)).unwrap(), doc);
        assert!(decode("%7B%2").is_err());
        assert!(decode("nonsense").is_err());
    }

    #[test]
    fn the_containment_statements_are_recognized() {
        let now = (std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_323_045)).into();
        let revoke = policy_document(PolicyPurpose::RevokeSessions, now);
        let deny = policy_document(PolicyPurpose::DenyAll, now);
        assert_eq!(
            containment_in(PolicyPurpose::RevokeSessions, &revoke).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            containment_in(PolicyPurpose::DenyAll, &deny).as_deref(),
            Some("")
        );
        // Each purpose is only satisfied by its own statement.
        assert_eq!(containment_in(PolicyPurpose::DenyAll, &revoke), None);
        assert_eq!(containment_in(PolicyPurpose::RevokeSessions, &deny), None);
        // An edited policy no longer holds.
        let weakened = json!({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}});
        assert_eq!(containment_in(PolicyPurpose::DenyAll, &weakened), None);
        let allowed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        assert_eq!(containment_in(PolicyPurpose::DenyAll, &allowed), None);
        // Single-statement objects and one-element arrays are the same policy to IAM.
        let object_form =
            json!({"Statement": {"Effect": "Deny", "Action": ["*"], "Resource": ["*"]}});
        assert_eq!(
            containment_in(PolicyPurpose::DenyAll, &object_form).as_deref(),
            Some("")
        );
    }
}
