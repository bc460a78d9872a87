//! The report's renderings held to golden files, and to what an attacker can put in them.
//!
//! The fixture is a realistic critical incident, resolved: a miner on a production instance,
//! evidence collected and volumes snapshotted, two gated steps each approved by two people,
//! one step failed (the chat message), the playbook ended contained, a review held with action
//! items. Markdown, JSON and HTML are rendered with a fixed clock (`NOW`) and compared byte for
//! byte with `tests/golden/report.{md,json,html}`; a difference fails the test and prints the
//! lines that differ.
//!
//! After an intended change of a rendering, regenerate the golden files and review their diff:
//!
//! ```sh
//! IR_UPDATE_GOLDEN=1 cargo test -p ir-incident --test report_rendering
//! git diff shared/ir-incident/tests/golden/
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use ir_core::Severity;
use ir_core::action::{Change, ChangeStatus, EvidenceObject, Outcome, SnapshotRef};
use ir_core::audit::Verified;
use ir_core::config::Mode;
use ir_core::evidence::ObjectLockSummary;
use ir_core::incident::{Status, Timeline};
use ir_core::playbook::NotApplicable;
use ir_core::review::{ActionItem, ItemStatus, Review, ReviewSections};
use ir_incident::report::timeline::{self, MarkKind};
use ir_incident::report::{
    ApprovalEvent, ApprovalKind, AuditReport, DecisionSummary, EvidenceArtifacts, EvidenceItem,
    FailureKind, IncidentReport, ManifestReport, PlanStep, PlaybookEnd, ResourceRef,
    SnapshotArtifacts, StepArtifacts, StepError, StepReport, StepResult, StepState, TimelineReport,
    UpdateSections, Verification, html, markdown,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::{date, datetime};

const ID: &str = "inc-3f9a1c2b7d4e5f60718a";
const INSTANCE: &str = "i-0a1b2c3d4e5f60001";
const ACCOUNT: &str = "123456789012";
const GATE: &str = "arn:aws:sts::123456789012:assumed-role/ir-request-approval/ir-request-approval";
const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/Responders/alice@example.com";
const BOB: &str = "arn:aws:sts::123456789012:assumed-role/Responders/bob@example.com";
const CAROL: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/carol@example.com";
const DAVE: &str = "arn:aws:sts::123456789012:assumed-role/SecurityLead/dave@example.com";
const BUCKET: &str = "ir-evidence-123456789012-us-east-1";
/// The fixed clock of the renderings.
const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 UTC);

fn requested(seq: u64, at: OffsetDateTime, level: u64, role: &str, timeout: u64) -> ApprovalEvent {
    ApprovalEvent {
        seq,
        at,
        kind: ApprovalKind::Requested,
        actor: GATE.into(),
        level: Some(level),
        role: Some(role.into()),
        timeout_seconds: Some(timeout),
        reason: None,
        why: None,
    }
}

fn decided(
    seq: u64,
    at: OffsetDateTime,
    kind: ApprovalKind,
    who: &str,
    reason: &str,
    why: Option<&str>,
) -> ApprovalEvent {
    ApprovalEvent {
        seq,
        at,
        kind,
        actor: who.into(),
        level: Some(0),
        role: None,
        timeout_seconds: None,
        reason: Some(reason.into()),
        why: why.map(str::to_owned),
    }
}

fn result(
    seq: u64,
    at: OffsetDateTime,
    function: &str,
    changes: Vec<Change>,
    artifacts: Option<StepArtifacts>,
    calls: u32,
) -> StepResult {
    StepResult {
        seq,
        at,
        function: function.into(),
        outcome: Outcome::Applied,
        mode: Mode::Enforce,
        changes,
        record: true,
        artifacts,
        notes: vec![],
        aws_calls: calls,
    }
}

fn change(
    target: &str,
    attribute: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Change {
    Change {
        target: target.into(),
        attribute: attribute.into(),
        before,
        after,
        status: ChangeStatus::Applied,
    }
}

fn plan_step(id: &str, action: &str, function: &str, gated: bool, destructive: bool) -> PlanStep {
    PlanStep {
        id: id.into(),
        action: action.into(),
        function: function.into(),
        mode: Mode::Enforce,
        requires_approval: gated,
        destructive,
        target: INSTANCE.into(),
    }
}

fn evidence_object(
    path: &str,
    version: &str,
    digest: char,
    size: u64,
    at: OffsetDateTime,
) -> EvidenceItem {
    EvidenceItem::new(
        EvidenceObject {
            key: format!("incidents/{ID}/{path}"),
            version_id: version.into(),
            sha256: digest.to_string().repeat(64),
            size,
            collected_at: at,
            collected_by:
                "arn:aws:sts::123456789012:assumed-role/ir-collect-evidence/ir-collect-evidence"
                    .into(),
            source: None,
        },
        Some(&ObjectLockSummary {
            mode: "COMPLIANCE".into(),
            retention_days: 365,
        }),
    )
}

fn item(
    id: &str,
    title: &str,
    owner: &str,
    due: time::Date,
    status: ItemStatus,
    jira: Option<&str>,
) -> ActionItem {
    ActionItem {
        id: id.into(),
        title: title.into(),
        owner: owner.into(),
        due,
        status,
        jira_key: jira.map(str::to_owned),
        added_by: CAROL.into(),
        added_at: datetime!(2026-11-25 15:10 UTC),
        closed_at: match status {
            ItemStatus::Open => None,
            _ => Some(datetime!(2026-12-02 11:00 UTC)),
        },
        closed_by: match status {
            ItemStatus::Open => None,
            _ => Some(CAROL.into()),
        },
        resolution: match status {
            ItemStatus::Done => Some("Deployed in every production account.".into()),
            ItemStatus::Dropped => Some("Superseded by A2.".into()),
            ItemStatus::Open => None,
        },
    }
}

/// The fixture: a critical incident, resolved, reviewed.
fn fixture() -> IncidentReport {
    let detected = datetime!(2026-11-20 03:18:05 UTC);
    let manifest_key = format!("incidents/{ID}/manifests/collect-evidence.json");
    IncidentReport {
        incident_id: ID.into(),
        status: Status::Resolved,
        severity: Severity::Critical,
        playbook: Some("immediate-isolation".into()),
        resource: ResourceRef {
            kind: "ec2-instance".into(),
            id: INSTANCE.into(),
            account: ACCOUNT.into(),
            key: format!("{ACCOUNT}/ec2-instance/{INSTANCE}"),
        },
        finding_count: 1,
        occurrences: 3,
        finding_ids: vec!["d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1".into()],
        last_seen: datetime!(2026-11-20 03:40:12 UTC),
        last_error: None,
        timeline: TimelineReport::new(Timeline {
            first_seen: Some(datetime!(2026-11-20 03:12:40 UTC)),
            detected_at: detected,
            triaged_at: Some(datetime!(2026-11-20 03:18:05.4 UTC)),
            contained_at: Some(datetime!(2026-11-20 03:31:10 UTC)),
            resolved_at: Some(datetime!(2026-11-21 09:40 UTC)),
        }),
        decision: Some(DecisionSummary {
            score: 0.9125,
            score_severity: Severity::Critical,
            finding_severity: Severity::High,
            severity: Severity::Critical,
            playbook: "immediate-isolation".into(),
            trigger: "severity == critical".into(),
            mode: Mode::Enforce,
            samples_only: false,
            sla: "immediate".into(),
            respond_by: detected,
            steps: vec![
                plan_step("collect-evidence", "cloud:collect_evidence", "ir-collect-evidence", false, false),
                plan_step("snapshot-volumes", "cloud:snapshot_volumes", "ir-snapshot-volumes", false, false),
                plan_step("revoke-credentials", "cloud:revoke_session", "ir-revoke-sessions", true, true),
                plan_step("isolate-instance", "cloud:security_group_deny_all", "ir-isolate-instance", true, true),
                plan_step("notify-channel", "slack:post_message", "ir-notify", false, false),
            ],
            not_applicable: vec![
                NotApplicable {
                    id: "disable-access-keys".into(),
                    action: "cloud:disable_access_keys".into(),
                    reason: "acts on an IAM user; the resource is an ec2-instance".into(),
                },
                NotApplicable {
                    id: "deny-principal".into(),
                    action: "cloud:deny_principal".into(),
                    reason: "acts on an IAM user or role; the resource is an ec2-instance".into(),
                },
            ],
        }),
        steps: vec![
            StepReport {
                step: "collect-evidence".into(),
                state: StepState::Applied,
                result: Some(result(
                    3,
                    datetime!(2026-11-20 03:18:09 UTC),
                    "ir-collect-evidence",
                    vec![],
                    Some(StepArtifacts::Evidence(EvidenceArtifacts {
                        bucket: BUCKET.into(),
                        manifest_key: manifest_key.clone(),
                        manifest_version_id: "Qm9xE1mT3sYj2.pH7Zr0Kq5w8NcVbL4a".into(),
                        objects: 3,
                    })),
                    9,
                )),
                error: None,
                approvals: vec![],
            },
            StepReport {
                step: "snapshot-volumes".into(),
                state: StepState::Applied,
                result: Some(result(
                    4,
                    datetime!(2026-11-20 03:18:12 UTC),
                    "ir-snapshot-volumes",
                    vec![change("vol-0c1d2e3f4a5b60001", "snapshot", json!(null), json!("snap-0f1e2d3c4b5a60001"))],
                    Some(StepArtifacts::Snapshots(SnapshotArtifacts {
                        instance_id: INSTANCE.into(),
                        snapshots: vec![SnapshotRef {
                            snapshot_id: "snap-0f1e2d3c4b5a60001".into(),
                            volume_id: "vol-0c1d2e3f4a5b60001".into(),
                        }],
                    })),
                    4,
                )),
                error: None,
                approvals: vec![],
            },
            StepReport {
                step: "revoke-credentials".into(),
                state: StepState::Applied,
                result: Some(result(
                    9,
                    datetime!(2026-11-20 03:26:05 UTC),
                    "ir-revoke-sessions",
                    vec![change(
                        "arn:aws:iam::123456789012:role/web-prod-1-role",
                        "inline-policy ir-revoke-sessions-inc-3f9a1c2b7d4e5f60718a",
                        json!(null),
                        json!("deny all, sessions issued before 2026-11-20T03:26:04Z"),
                    )],
                    None,
                    6,
                )),
                error: None,
                approvals: vec![
                    requested(5, datetime!(2026-11-20 03:18:13 UTC), 0, "security_engineer", 900),
                    decided(6, datetime!(2026-11-20 03:24:40 UTC), ApprovalKind::Counted, ALICE, "instance profile credentials seen from 185.220.101.4", Some("1 of 2 approvals")),
                    decided(8, datetime!(2026-11-20 03:26:02 UTC), ApprovalKind::Approved, BOB, "agreed", None),
                ],
            },
            StepReport {
                step: "isolate-instance".into(),
                state: StepState::Applied,
                result: Some(result(
                    13,
                    datetime!(2026-11-20 03:31:10 UTC),
                    "ir-isolate-instance",
                    vec![
                        change("eni-0a1b2c3d4e5f60001", "security-groups", json!(["sg-0web", "sg-0ssh"]), json!(["sg-0isolation"])),
                        change("eni-0a1b2c3d4e5f60002", "security-groups", json!(["sg-0db-client"]), json!(["sg-0isolation"])),
                        change(INSTANCE, "disable-api-termination", json!(false), json!(true)),
                    ],
                    None,
                    21,
                )),
                error: None,
                approvals: vec![
                    requested(10, datetime!(2026-11-20 03:26:06 UTC), 0, "security_engineer", 900),
                    decided(11, datetime!(2026-11-20 03:29:30 UTC), ApprovalKind::Counted, CAROL, "outbound to a mining pool, confirmed with the owner", Some("1 of 2 approvals")),
                    decided(12, datetime!(2026-11-20 03:30:55 UTC), ApprovalKind::Approved, DAVE, "isolate now", None),
                ],
            },
            StepReport {
                step: "notify-channel".into(),
                state: StepState::Failed,
                result: None,
                error: Some(StepError {
                    seq: 15,
                    at: datetime!(2026-11-20 03:31:10 UTC),
                    kind: FailureKind::Failed,
                    error: "DeliveryFailed".into(),
                    cause: "slack chat.postMessage answered 503 three times".into(),
                }),
                approvals: vec![],
            },
        ],
        finished: Some(PlaybookEnd {
            seq: 16,
            at: datetime!(2026-11-20 03:31:12 UTC),
            playbook: "immediate-isolation".into(),
            contained: true,
            why: None,
            destructive_applied: vec!["revoke-credentials".into(), "isolate-instance".into()],
            not_applied: vec![],
        }),
        evidence: vec![ManifestReport {
            step: "collect-evidence".into(),
            bucket: BUCKET.into(),
            key: manifest_key,
            version_id: "Qm9xE1mT3sYj2.pH7Zr0Kq5w8NcVbL4a".into(),
            object_lock: Some(ObjectLockSummary {
                mode: "COMPLIANCE".into(),
                retention_days: 365,
            }),
            objects: vec![
                evidence_object("finding/d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1.json", "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrA", 'a', 4182, datetime!(2026-11-20 03:18:07.25 UTC)),
                evidence_object("describe/ec2-instance.json", "7HqPz0dYx2Wv.bN1mK8sJ4tR6uE9cF3g", 'b', 9911, datetime!(2026-11-20 03:18:08.5 UTC)),
                evidence_object("cloudtrail/123456789012_CloudTrail_us-east-1_20261120T0315Z.json.gz", "Lp0oKi9uJy8hGt7.fR6dEs5wAq4zXc3v", 'c', 120_336, datetime!(2026-11-20 03:18:08.9 UTC)),
            ],
            error: None,
        }],
        audit: AuditReport {
            records_read: 19,
            read_error: None,
            verification: Verification::Verified(Verified {
                records: 19,
                head: "5e1f".repeat(16),
                anchors_checked: 4,
                unanchored: 0,
                unanchored_from: None,
            }),
        },
        notes: vec![],
        update: UpdateSections {
            status: "Resolved".into(),
            severity: "Critical".into(),
            time_detected: detected,
            time_contained: Some(datetime!(2026-11-20 03:31:10 UTC)),
            deadlines: vec![
                "GDPR Art. 33: notify the supervisory authority: due 2026-11-23 03:14 UTC (2d 23h left)"
                    .into(),
            ],
            summary: format!(
                "Critical severity incident on ec2-instance {INSTANCE} (account {ACCOUNT}, us-east-1): 1 finding, first: The EC2 instance {INSTANCE} is querying a domain name that is associated with Bitcoin-related activity. Triage score 0.91; playbook immediate-isolation in enforce mode."
            ),
            scope: vec![
                format!("Resource: ec2-instance {INSTANCE} (account {ACCOUNT}, us-east-1)"),
                "Findings: 1 (3 deliveries)".into(),
                "Activity: first seen 2026-11-20 03:12 UTC, last seen 2026-11-20 03:40 UTC".into(),
            ],
            actions_taken: vec![
                "collect-evidence: ir-collect-evidence applied (enforce), 0 change(s)".into(),
                "snapshot-volumes: ir-snapshot-volumes applied (enforce), 1 change(s)".into(),
                format!("revoke-credentials: approved by {ALICE} (1 of 2 approvals)"),
                format!("revoke-credentials: approved by {BOB}"),
                "revoke-credentials: ir-revoke-sessions applied (enforce), 1 change(s)".into(),
                format!("isolate-instance: approved by {CAROL} (1 of 2 approvals)"),
                format!("isolate-instance: approved by {DAVE}"),
                "isolate-instance: ir-isolate-instance applied (enforce), 3 change(s)".into(),
                "notify-channel: failed (DeliveryFailed)".into(),
            ],
            next_steps: vec![
                "Review the actions taken and the evidence; decide on containment and resolution.".into(),
                format!("Audit trail: `ir audit verify {ID}`"),
            ],
            dry_run: false,
        },
        review: Some(Review {
            opened_at: datetime!(2026-11-23 09:00 UTC),
            opened_by: CAROL.into(),
            review_date: date!(2026 - 11 - 25),
            sections: ReviewSections {
                timeline: "- 03:12 the miner starts (first DNS query to the pool)\n- 03:18 GuardDuty finding received, triaged critical\n- 03:31 isolated after two approvals per step".into(),
                detection: "GuardDuty caught the DNS queries 5 minutes after the first one. A VPC flow log alert on the pool's port would have fired within a minute.".into(),
                response: "Evidence and snapshots ran before any change. The two approvals took 8 and 5 minutes; the Slack message failed (503) and nobody noticed until the review.".into(),
                root_cause: "A public Jenkins agent AMI with a default password, launched into the production VPC by an old launch template.".into(),
            },
            items: vec![
                item("A1", "Remove the legacy launch template from every account", "team-platform", date!(2026 - 11 - 30), ItemStatus::Done, Some("SEC-412")),
                item("A2", "Alert on outbound traffic to mining pools from VPC flow logs", "team-detection", date!(2026 - 12 - 01), ItemStatus::Open, Some("SEC-413")),
                item("A3", "Page the on-call when a notification step fails", "team-ir", date!(2026 - 12 - 20), ItemStatus::Open, None),
                item("A4", "Block the pool's domains at the resolver", "team-network", date!(2026 - 12 - 10), ItemStatus::Dropped, None),
            ],
            closed_at: None,
            closed_by: None,
        }),
    }
}

// ------------------------------------------------------------------------------ golden files

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The lines of `expected` and `actual` that differ, with a line of context (a plain LCS).
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines: Vec<(char, usize, &str)> = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            lines.push(('+', j + 1, b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        lines[k.saturating_sub(1)..(k + 2).min(lines.len())]
            .iter()
            .any(|l| l.0 != ' ')
    };
    let mut out = String::new();
    for (k, (sign, n, text)) in lines.iter().enumerate() {
        if near(k) {
            out.push_str(&format!("{sign}{n:>5} {text}\n"));
        }
    }
    out
}

/// `actual` must equal the golden file `name`; `IR_UPDATE_GOLDEN=1` writes it instead.
fn golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("IR_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with IR_UPDATE_GOLDEN=1 cargo test -p ir-incident --test report_rendering",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the rendering (- golden, + now; IR_UPDATE_GOLDEN=1 regenerates it):\n{}",
            path.display(),
            diff(&expected, actual)
        );
    }
}

#[test]
fn markdown_matches_its_golden_file() {
    golden("report.md", &markdown::render(&fixture(), NOW));
}

#[test]
fn json_matches_its_golden_file() {
    let mut text = serde_json::to_string_pretty(&fixture()).unwrap();
    text.push('\n');
    golden("report.json", &text);
}

#[test]
fn html_matches_its_golden_file() {
    golden("report.html", &html::render(&fixture(), NOW));
}

#[test]
fn the_diff_names_the_lines_that_differ() {
    let d = diff("a\nb\nc\nd\ne\nf\n", "a\nb\nC\nd\ne\nf\n");
    assert_eq!(d, "     2 b\n-    3 c\n+    3 C\n     4 d\n");
}

// ------------------------------------------------------------------------------ structure

#[test]
fn markdown_starts_with_the_seed_template_then_the_detail_then_the_review() {
    let md = markdown::render(&fixture(), NOW);
    let order = [
        "## Incident Update: inc-3f9a1c2b7d4e5f60718a\n",
        "**Status:** Resolved",
        "**Severity:** Critical",
        "**Time detected:** 2026-11-20 03:18 UTC",
        "**Time contained:** 2026-11-20 03:31 UTC",
        "### Summary\n",
        "### Scope\n",
        "### Actions Taken\n1. ",
        "### Next Steps\n",
        "### Timeline\n**MTTD** 5m25s (first activity → detection) · **MTTC** 13m5s (detection → containment)",
        "### Triage Decision\n",
        "### Steps\n",
        "### Evidence\n",
        "### Audit Chain\n",
        "## Post-Incident Review\n**Review date:** 2026-11-25",
        "### Timeline Reconstruction\n",
        "### Detection Analysis\n",
        "### Response Evaluation\n",
        "### Root Cause\n",
        "### Action Items\n| ID | Title | Owner | Due | Status | Jira |",
    ];
    let mut from = 0;
    for part in order {
        let at = md[from..]
            .find(part)
            .unwrap_or_else(|| panic!("`{part}` missing after byte {from}:\n{md}"));
        from += at + part.len();
    }
    // Who approved, when; the failed step; the evidence with its lock; the overdue item.
    assert!(md.contains("  - 2026-11-20 03:30:55 UTC: **approved** by arn:aws:sts::123456789012:assumed-role/SecurityLead/dave@example.com"), "{md}");
    assert!(md.contains("#### 5. notify-channel: failed\n- **Failed:** 2026-11-20 03:31:10 UTC (audit record 15): DeliveryFailed: slack chat.postMessage answered 503 three times"), "{md}");
    assert!(
        md.contains(&format!(
            "| {} | 4182 | 2026-11-20 03:18:07 | 2027-11-20 03:18:07 |",
            "a".repeat(64)
        )),
        "{md}"
    );
    assert!(md.contains("| A2 | Alert on outbound traffic to mining pools from VPC flow logs | team-detection | 2026-12-01 | **open (overdue by 4 days)** | SEC-413 |"), "{md}");
    assert!(md.contains("| A3 | Page the on-call when a notification step fails | team-ir | 2026-12-20 | open | - |"), "{md}");
}

#[test]
fn without_a_review_the_report_says_so() {
    let mut r = fixture();
    r.review = None;
    let md = markdown::render(&r, NOW);
    assert!(
        md.ends_with("## Post-Incident Review\nReview not held yet.\n"),
        "{md}"
    );
    let page = html::render(&r, NOW);
    assert!(
        page.contains("<h2>Post-Incident Review</h2>\n<p>Review not held yet.</p>"),
        "{page}"
    );
    assert!(
        !serde_json::to_value(&r)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("review")
    );
    let v = serde_json::to_value(fixture()).unwrap();
    assert_eq!(v["review"]["items"][1]["jiraKey"], "SEC-413");
    assert_eq!(
        v["evidence"][0]["objects"][0]["retainUntil"],
        "2027-11-20T03:18:07Z"
    );
    assert_eq!(v["update"]["status"], "Resolved");
}

// ------------------------------------------------------------------------------ the timeline

#[test]
fn the_timeline_marks_every_event_in_order_and_ties_in_life_order() {
    let r = fixture();
    let marks = timeline::marks(&r);
    let kinds: Vec<MarkKind> = marks.iter().map(|m| m.kind).collect();
    use MarkKind as K;
    assert_eq!(
        kinds,
        [
            K::Activity,
            K::Detected,
            K::Triaged,
            K::Applied,
            K::Applied,
            K::ApprovalRequested,
            K::ApprovalCounted,
            K::Approved,
            K::Applied,
            K::ApprovalRequested,
            K::ApprovalCounted,
            K::Approved,
            // 03:31:10: the isolation, the failed message and containment share a second.
            K::Applied,
            K::Failed,
            K::Contained,
            K::PlaybookEnd,
            K::Resolved,
        ]
    );
    assert_eq!(marks[7].who.as_deref(), Some(BOB));
    assert!(marks.windows(2).all(|w| w[0].at <= w[1].at));

    let svg = timeline::svg(&r);
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.contains(" id=\"timeline\""), "{svg}");
    assert_eq!(
        svg.matches("<g class=\"mark ").count(),
        marks.len(),
        "{svg}"
    );
    for kind in [
        "detected",
        "triaged",
        "approved",
        "applied",
        "failed",
        "contained",
        "resolved",
    ] {
        assert!(
            svg.contains(&format!("class=\"mark mark-{kind}\"")),
            "{kind}: {svg}"
        );
    }
    assert!(svg.contains("class=\"span span-mttd\""), "{svg}");
    assert!(svg.contains("class=\"span span-mttc\""), "{svg}");
    assert!(
        svg.contains(">\n5m25s\n</text>") && svg.contains(">\n13m5s\n</text>"),
        "{svg}"
    );
    // Who and when of an approval are on its row.
    assert!(
        svg.contains("isolate-instance approved by dave@example.com (SecurityLead)"),
        "{svg}"
    );
    assert!(
        svg.contains(
            "(by arn:aws:sts::123456789012:assumed-role/SecurityLead/dave@example.com)</title>"
        ),
        "{svg}"
    );
    assert_eq!(
        timeline::short_actor("arn:aws:iam::123456789012:user/ops/erin"),
        "erin"
    );
    assert_eq!(timeline::short_actor("ir-record"), "ir-record");
}

#[test]
fn an_incident_not_contained_yet_has_an_open_mttc_and_no_contained_mark() {
    let mut r = fixture();
    r.status = Status::Containment;
    r.timeline = TimelineReport::new(Timeline {
        first_seen: None,
        contained_at: None,
        resolved_at: None,
        ..r.timeline.stamps
    });
    r.steps.truncate(2);
    r.finished = None;
    r.update.status = "Containment".into();
    r.update.time_contained = None;
    let marks = timeline::marks(&r);
    assert!(marks.iter().all(|m| !matches!(
        m.kind,
        MarkKind::Contained | MarkKind::Resolved | MarkKind::Activity
    )));
    let svg = timeline::svg(&r);
    assert!(
        !svg.contains("span-mttd"),
        "no first activity: no MTTD bracket: {svg}"
    );
    assert!(svg.contains("class=\"span span-mttc\""), "{svg}");
    assert!(
        svg.contains("stroke-dasharray=\"6 4\""),
        "an open span is dashed: {svg}"
    );
    assert!(svg.contains(">\nnot yet\n</text>"), "{svg}");
    let md = markdown::render(&r, NOW);
    assert!(
        md.contains("**MTTD** unknown (no first activity reported) · **MTTC** not contained yet"),
        "{md}"
    );
    assert!(md.contains("**Time contained:** not contained yet"), "{md}");
}

// ------------------------------------------------------------------------------ hostile values

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
const LINK: &str = "[click](javascript:alert(1)) | *x* `y`\n# heading";

/// The fixture with attacker-controlled text wherever a finding, a tag, a resource or a person
/// can put it.
fn hostile() -> IncidentReport {
    let mut r = fixture();
    let evil = format!("{SCRIPT}{IMG}{LINK}");
    r.resource.id = format!("i-0abc{IMG}");
    r.finding_ids.push(evil.clone());
    r.update.summary = format!("first: {evil}");
    r.update.scope.push(format!("Findings: {evil}"));
    r.update.actions_taken.push(evil.clone());
    r.steps[2].approvals[1].reason = Some(evil.clone());
    r.steps[2].approvals[2].actor = format!("arn:aws:sts::1:assumed-role/x/{IMG}");
    r.steps[3].result.as_mut().unwrap().changes[0].after = json!([evil.clone()]);
    r.steps[4].error.as_mut().unwrap().cause = evil.clone();
    r.evidence[0].objects[0].object.key = format!("incidents/{SCRIPT}");
    let review = r.review.as_mut().unwrap();
    review.sections.root_cause = format!("pasted from the finding: {SCRIPT}{IMG}");
    review.items[0].title = evil.clone();
    review.items[0].owner = IMG.into();
    r.notes.push(evil);
    r
}

/// Every tag of an HTML page: its name, and whether it has an event-handler, `src` or `href`
/// attribute.
fn tags(page: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let end = rest.find('>').unwrap();
        let tag = &rest[..end];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect::<String>()
            .to_ascii_lowercase();
        let handler = tag
            .split_whitespace()
            .skip(1)
            .map(str::to_ascii_lowercase)
            .any(|a| a.starts_with("on") || a.starts_with("src") || a.contains("href"));
        out.push((name, handler));
        rest = &rest[end..];
    }
    out
}

#[test]
fn html_shows_hostile_values_only_escaped() {
    let page = html::render(&hostile(), NOW);
    let allowed = [
        "!doctype", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
        "div", "main", "section", "dl", "dt", "dd", "p", "ul", "ol", "li", "table", "tr", "th",
        "td", "code", "span", "b", "i", "small", "br", "details", "summary", "svg", "g", "rect",
        "circle", "path", "line", "text",
    ];
    for (name, handler) in tags(&page) {
        assert!(
            allowed.contains(&name.as_str()),
            "a <{name}> tag: the page was injected"
        );
        assert!(!handler, "an event handler or a link on <{name}>");
    }
    assert!(!page.contains(SCRIPT) && !page.contains("<img"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    // The SVG namespace is a name, not a fetch; nothing else names a URL.
    let without_namespace = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_namespace.contains("http://") && !without_namespace.contains("https://"),
        "no external URL: {page}"
    );
    assert!(
        page.contains("Content-Security-Policy\" content=\"default-src 'none';"),
        "{page}"
    );
    // The SVG is inline and its text escaped too.
    let svg = timeline::svg(&hostile());
    for (name, handler) in tags(&svg) {
        assert!(
            allowed.contains(&name.as_str()),
            "a <{name}> tag in the SVG"
        );
        assert!(!handler, "an event handler on <{name}> in the SVG");
    }
}

#[test]
fn markdown_shows_hostile_values_as_literal_text() {
    let md = markdown::render(&hostile(), NOW);
    assert!(!md.contains("<script") && !md.contains("<img"), "{md}");
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{md}");
    assert!(
        md.contains("\\[click\\](javascript:alert(1)) \\| \\*x\\* \\`y\\`"),
        "{md}"
    );
    assert!(!md.contains("[click]("), "{md}");
    // A value cannot start a line of its own (a heading) or add a table cell.
    assert!(!md.lines().any(|l| l.starts_with("# heading")), "{md}");
    let row = md.lines().find(|l| l.starts_with("| A1 |")).unwrap();
    let cells = row.replace("\\|", "").matches('|').count();
    assert_eq!(cells, 7, "{row}");
    // The review's own Markdown is kept, its raw HTML neutralized.
    assert!(md.contains("- 03:12 the miner starts"), "{md}");
    assert!(md.contains("pasted from the finding: &lt;script>"), "{md}");
    assert_eq!(
        markdown::text("a_b *c* <d> & |e|"),
        "a\\_b \\*c\\* &lt;d&gt; &amp; \\|e\\|"
    );
}
