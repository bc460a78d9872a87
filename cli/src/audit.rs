//! `ir audit verify INCIDENT`: the incident's audit chain, checked record by record and against
//! every anchor in the Object Lock evidence bucket (versions hidden behind delete markers
//! included).
//!
//! Exit 0 printing `N records, head <hash>, M anchors verified` and the unanchored tail (`all
//! anchored`, or `K after the last anchor, from seq S`: records the anchors do not protect yet);
//! exit 1 naming where the chain
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
    let tail = match v.unanchored_from {
        None => "all anchored".to_owned(),
        Some(from) => format!(
            "{} unanchored (after the last anchor, from seq {from})",
            v.unanchored
        ),
    };
    format!(
        "{} records, head {}, {} anchors verified, {tail}",
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
        .map_err(|e| CliError::named(ir_core::Named::error_name(&e), e.to_string()))?;
    let text = if json {
        serde_json::json!({
            "incidentId": incident,
            "records": v.records,
            "head": v.head,
            "anchorsVerified": v.anchors_checked,
            "unanchored": v.unanchored,
            "unanchoredFromSeq": v.unanchored_from,
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
            unanchored: 0,
            unanchored_from: None,
        };
        assert_eq!(
            summary(&v),
            format!(
                "7 records, head {}, 2 anchors verified, all anchored",
                "ab".repeat(32)
            )
        );
        let tail = Verified {
            unanchored: 3,
            unanchored_from: Some(4),
            ..v
        };
        assert_eq!(
            summary(&tail),
            format!(
                "7 records, head {}, 2 anchors verified, 3 unanchored (after the last anchor, from seq 4)",
                "ab".repeat(32)
            )
        );
    }
}
