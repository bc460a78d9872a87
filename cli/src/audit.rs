//! `ir audit verify INCIDENT`: the incident's audit chain, checked record by record and against
//! every anchor in the Object Lock evidence bucket (versions hidden behind delete markers
//! included).
//!
//! Exit 0 printing `N records, head <hash>, M anchors verified`; exit 1 naming where the chain
//! breaks (an edited, deleted, inserted or reordered record, a truncated tail, a rewritten
//! chain); exit 2 for an argument or a variable that is wrong.

use std::io::Write;

use ir_aws::Clients;
use ir_aws::store::{AuditLog, TableNames};
use ir_core::audit::Verified;

use crate::CliError;

/// `ir audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Verify an incident's audit chain against its anchors. Needs IR_AUDIT_TABLE and
    /// IR_EVIDENCE_BUCKET, and AWS credentials that can read them.
    #[command(after_help = crate::approve::ENV_HELP)]
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The incident (`inc-` followed by 20 hex digits).
    incident: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// The one line `ir audit verify` prints.
pub fn summary(v: &Verified) -> String {
    format!(
        "{} records, head {}, {} anchors verified",
        v.records, v.head, v.anchors_checked
    )
}

/// Runs `ir audit …`.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let Sub::Verify(args) = &args.command;
    crate::aws::check_incident_id(&args.incident)?;
    // Only the audit table is read; the other names are not needed here.
    let names = TableNames {
        audit: crate::aws::var("IR_AUDIT_TABLE")?,
        ..TableNames::with_prefix("unused")
    };
    let bucket = crate::aws::var("IR_EVIDENCE_BUCKET")?;
    crate::aws::with_clients(async |clients| {
        verify(&clients, &names, &bucket, &args.incident, args.json, out).await
    })
}

/// `ir audit verify` with these clients: the chain and its anchors, verified and printed.
pub async fn verify(
    clients: &Clients,
    names: &TableNames,
    bucket: &str,
    incident: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    crate::aws::check_incident_id(incident)?;
    let v = AuditLog::new(clients.clone(), names.clone())
        .verify(incident, bucket)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let text = if json {
        serde_json::json!({
            "incidentId": incident,
            "records": v.records,
            "head": v.head,
            "anchorsVerified": v.anchors_checked,
        })
        .to_string()
    } else {
        summary(&v)
    };
    writeln!(out, "{text}").map_err(|e| CliError::Failed(format!("writing output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line() {
        let v = Verified {
            records: 7,
            head: "ab".repeat(32),
            anchors_checked: 2,
        };
        assert_eq!(
            summary(&v),
            format!("7 records, head {}, 2 anchors verified", "ab".repeat(32))
        );
    }

    #[tokio::test]
    async fn verifies_against_the_local_cloud_and_names_a_break() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let ir_tests::Stores {
            clients,
            names,
            bucket,
            ..
        } = ir_tests::stores("cli-audit").await;
        let id = ir_tests::incident_id();
        let log = AuditLog::new(clients.clone(), names.clone());
        let now = time::OffsetDateTime::now_utc();
        for i in 0..3 {
            log.append(&id, "ir-record", "step", serde_json::json!({"i": i}), now)
                .await
                .unwrap();
        }
        let evidence = ir_core::config::EvidenceConfig {
            retention_days: 1,
            ..Default::default()
        };
        let anchor = log
            .anchor(&id, "left-containment", &bucket, &evidence, now)
            .await
            .unwrap();
        let mut out = Vec::new();
        verify(&clients, &names, &bucket, &id, false, &mut out)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("3 records, head {}, 1 anchors verified\n", anchor.hash)
        );

        // Record 1 edited in place: exit 1, the break named.
        clients
            .dynamodb()
            .update_item()
            .table_name(&names.audit)
            .key("incidentId", AttributeValue::S(id.clone()))
            .key("seq", AttributeValue::N("1".into()))
            .update_expression("SET #d = :d")
            .expression_attribute_names("#d", "detail")
            .expression_attribute_values(":d", AttributeValue::S("{\"i\":42}".into()))
            .send()
            .await
            .unwrap();
        let e = verify(&clients, &names, &bucket, &id, false, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), 1);
        assert!(
            e.to_string()
                .contains("record 1 does not match its hash (edited)"),
            "{e}"
        );
        let e = verify(
            &clients,
            &names,
            &bucket,
            "inc-nope",
            false,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), 2);
    }
}
