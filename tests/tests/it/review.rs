//! The post-incident review (`ir review`) against the local cloud: the real `ir` binary, run
//! with an approver's own session credentials (an assumed role STS names, held by
//! `notifications.approver_roles` through the deployment's `IR_APPROVERS_*` overlay) and with
//! credentials that hold no role, on an incident driven to `resolved` by `ir resolve`. What the
//! commands leave is read back with the suite's stores (the incident, its audit chain) and
//! `ir audit verify`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};

use ir_aws::Clients;
use ir_aws::store::{AuditLog, IncidentPatch, IncidentStore, TableNames};
use ir_core::audit::event::AuditEvent;
use ir_core::incident::Status;
use ir_core::review::{Closing, ItemStatus};
use ir_incident::approval::ApproverPolicy;
use ir_incident::recorder::{Recorder, RecorderSettings, SlotSettings};
use ir_incident::review::{ReviewChange, ReviewRequest, ReviewSettings, change_review};
use ir_tests::offline::{Responder, bin_dir, cloud_environment, session};
use ir_tests::{ACCOUNT_ID, LocalCloud, Stores, TestResult, unique_name};
use serde_json::Value;
use time::{Date, Duration, OffsetDateTime};

/// The tables, bucket and an approver of one test, and its incident (in `triage`).
struct Review {
    cloud: &'static LocalCloud,
    clients: Clients,
    names: TableNames,
    bucket: String,
    /// alice, holding the engineers' role (`security_engineer`).
    alice: Responder,
    role_arn: String,
    incident: String,
}

async fn setup(tag: &str) -> Review {
    let Stores {
        cloud,
        clients,
        names,
        bucket,
    } = ir_tests::stores(tag).await;
    let name = unique_name("Reviewers");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_ID}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = clients
        .iam()
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let role_arn = role.role().unwrap().arn().to_owned();
    let alice = session(&clients, &role_arn, "alice").await.unwrap();
    let bytes =
        std::fs::read(ir_tests::repo_root().join("events/guardduty-ssh-bruteforce.json")).unwrap();
    let normalized = ir_core::normalize(&bytes).unwrap();
    let event = normalized.events.first().unwrap();
    let store = IncidentStore::new(clients.clone(), names.clone());
    let ingested = store
        .ingest(event, OffsetDateTime::now_utc() - Duration::hours(3))
        .await
        .unwrap();
    Review {
        cloud,
        clients,
        names,
        bucket,
        alice,
        role_arn,
        incident: ingested.incident.incident_id,
    }
}

impl Review {
    fn store(&self) -> IncidentStore {
        IncidentStore::new(self.clients.clone(), self.names.clone())
    }

    /// The environment a deployment gives an operator: this cloud, the suite's names, and the
    /// test's role as the engineers' (`IR_APPROVERS_SECURITY_ENGINEER`).
    fn environment(&self) -> Vec<(String, String)> {
        let mut env = cloud_environment(self.cloud);
        for (k, v) in [
            ("IR_INCIDENTS_TABLE", &self.names.incidents),
            ("IR_KEYS_TABLE", &self.names.keys),
            ("IR_AUDIT_TABLE", &self.names.audit),
            ("IR_APPROVALS_TABLE", &self.names.approvals),
            ("IR_EVIDENCE_BUCKET", &self.bucket),
            ("IR_APPROVERS_SECURITY_ENGINEER", &self.role_arn),
        ] {
            env.push((k.to_owned(), v.clone()));
        }
        env
    }

    async fn run(&self, env: Vec<(String, String)>, args: &[&str]) -> Output {
        tokio::process::Command::new(bin_dir().unwrap().join("ir"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// `ir <args>` as alice (her session's credentials).
    async fn ir(&self, args: &[&str]) -> Output {
        let mut env = self.environment();
        for (k, v) in &mut env {
            if k == "AWS_ACCESS_KEY_ID" {
                v.clone_from(&self.alice.access_key_id);
            } else if k == "AWS_SECRET_ACCESS_KEY" {
                v.clone_from(&self.alice.secret_access_key);
            }
        }
        env.push((
            "AWS_SESSION_TOKEN".to_owned(),
            self.alice.session_token.clone(),
        ));
        self.run(env, args).await
    }

    /// `ir <args>` with the emulator's static credentials: an identity that holds no role.
    async fn ir_as_nobody(&self, args: &[&str]) -> Output {
        self.run(self.environment(), args).await
    }

    /// Contained by the store, then resolved by `ir resolve` as alice.
    async fn resolve(&self) {
        let store = self.store();
        let now = OffsetDateTime::now_utc();
        for (from, to) in [
            (Status::Triage, Status::Containment),
            (Status::Containment, Status::Contained),
        ] {
            store
                .transition(&self.incident, from, to, now, IncidentPatch::default())
                .await
                .unwrap();
        }
        let out = self
            .ir(&["resolve", &self.incident, "--reason", "rebuilt from IaC"])
            .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    async fn chain_actions(&self) -> Vec<(String, String)> {
        AuditLog::new(self.clients.clone(), self.names.clone())
            .chain(&self.incident)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.action, r.actor))
            .collect()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON an `ir … --json` printed, after checking it exited `code`.
fn json(out: &Output, code: i32) -> Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn utc_day(t: OffsetDateTime) -> Date {
    t.to_offset(time::UtcOffset::UTC).date()
}

#[tokio::test]
async fn an_approver_holds_the_review_from_open_to_close_and_every_change_is_audited() -> TestResult
{
    let r = setup("review-flow").await;
    let id = r.incident.as_str();

    // Not resolved yet: no review.
    r.store()
        .transition(
            id,
            Status::Triage,
            Status::Containment,
            OffsetDateTime::now_utc(),
            IncidentPatch::default(),
        )
        .await?;
    let early = r.ir(&["review", "open", id]).await;
    assert_eq!(early.status.code(), Some(4), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("once the incident is resolved"),
        "{}",
        stderr(&early)
    );
    r.store()
        .transition(
            id,
            Status::Containment,
            Status::Contained,
            OffsetDateTime::now_utc(),
            IncidentPatch::default(),
        )
        .await?;
    let out = r.ir(&["resolve", id, "--reason", "rebuilt from IaC"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let resolved_at = r
        .store()
        .get(id)
        .await?
        .unwrap()
        .summary
        .timeline
        .resolved_at
        .unwrap();

    // Someone holding no escalation role is refused, and nothing changes.
    let nobody = r.ir_as_nobody(&["review", "open", id]).await;
    assert_eq!(nobody.status.code(), Some(4), "{}", stderr(&nobody));
    assert!(
        stderr(&nobody).contains("may not change post-incident reviews"),
        "{}",
        stderr(&nobody)
    );
    let still = r.store().get(id).await?.unwrap();
    assert_eq!(
        (still.summary.status, still.review.is_some()),
        (Status::Resolved, false)
    );

    // Opened: postmortem, the review held after_days (3) after the resolution.
    let opened = json(&r.ir(&["review", "open", id, "--json"]).await, 0);
    let reviewed = &opened["reviewed"];
    assert_eq!(reviewed["status"], "postmortem", "{opened}");
    let expected = (utc_day(resolved_at) + Duration::days(3)).to_string();
    assert_eq!(reviewed["review"]["reviewDate"], expected.as_str());
    assert_eq!(reviewed["by"], r.alice.arn.as_str());
    assert!(reviewed["anchor"]["hash"].is_string(), "{opened}");
    let again = r.ir(&["review", "open", id]).await;
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("open already"),
        "{}",
        stderr(&again)
    );

    // Sections: one from a file, one inline; closing before all four are written is refused.
    let file = std::env::temp_dir().join(format!("{}.md", unique_name("timeline")));
    std::fs::write(&file, "09:00 GuardDuty finding\n09:04 isolation approved\n")?;
    let at_file = format!("@{}", file.display());
    let out = r
        .ir(&[
            "review",
            "write",
            id,
            "--timeline",
            &at_file,
            "--detection",
            "GuardDuty, four minutes after the first attempt",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("wrote timeline, detection")
            && stdout(&out).contains("still to write: response, root-cause"),
        "{}",
        stdout(&out)
    );
    let unchanged = r
        .ir(&[
            "review",
            "write",
            id,
            "--detection",
            "GuardDuty, four minutes after the first attempt",
        ])
        .await;
    assert_eq!(unchanged.status.code(), Some(0), "{}", stderr(&unchanged));
    assert!(
        stdout(&unchanged).contains("nothing changed"),
        "{}",
        stdout(&unchanged)
    );
    let early_close = r.ir(&["review", "close", id]).await;
    assert_eq!(
        early_close.status.code(),
        Some(4),
        "{}",
        stderr(&early_close)
    );
    assert!(
        stderr(&early_close).contains("missing: response, root-cause"),
        "{}",
        stderr(&early_close)
    );

    // Action items: ids in order, one closed once.
    let resolved_day = utc_day(resolved_at);
    let due1 = (resolved_day + Duration::days(20)).to_string();
    let due2 = (resolved_day + Duration::days(40)).to_string();
    let a1 = json(
        &r.ir(&[
            "review",
            "item",
            "add",
            id,
            "--title",
            "Close port 22 to the internet",
            "--owner",
            "team-web",
            "--due",
            &due1,
            "--jira",
            "SEC-42",
            "--json",
        ])
        .await,
        0,
    );
    assert_eq!(a1["reviewed"]["item"]["id"], "A1", "{a1}");
    assert_eq!(a1["reviewed"]["item"]["jiraKey"], "SEC-42");
    let a2 = json(
        &r.ir(&[
            "review",
            "item",
            "add",
            id,
            "--title",
            "Alert on SSH from outside",
            "--owner",
            "team-secops",
            "--due",
            &due2,
            "--json",
        ])
        .await,
        0,
    );
    assert_eq!(a2["reviewed"]["item"]["id"], "A2", "{a2}");
    let done = r
        .ir(&[
            "review",
            "item",
            "close",
            id,
            "A1",
            "--done",
            "--note",
            "security group changed",
        ])
        .await;
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(
        stdout(&done).contains("Action item A1"),
        "{}",
        stdout(&done)
    );
    let twice = r
        .ir(&[
            "review",
            "item",
            "close",
            id,
            "A1",
            "--dropped",
            "--note",
            "n/a",
        ])
        .await;
    assert_eq!(twice.status.code(), Some(4), "{}", stderr(&twice));
    assert!(
        stderr(&twice).contains("A1 is already done"),
        "{}",
        stderr(&twice)
    );
    let unknown = r.ir(&["review", "item", "close", id, "A9", "--done"]).await;
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    let bad_date = r
        .ir(&[
            "review",
            "item",
            "add",
            id,
            "--title",
            "x",
            "--owner",
            "y",
            "--due",
            "01/05/2027",
        ])
        .await;
    assert_eq!(bad_date.status.code(), Some(2), "{}", stderr(&bad_date));
    assert!(stderr(&bad_date).contains("due"), "{}", stderr(&bad_date));
    let before = r
        .ir(&[
            "review",
            "item",
            "add",
            id,
            "--title",
            "x",
            "--owner",
            "y",
            "--due",
            &(resolved_day - Duration::days(1)).to_string(),
        ])
        .await;
    assert_eq!(before.status.code(), Some(2), "{}", stderr(&before));

    // The rest written, then closed: A2 stays open, tracked on.
    let out = r
        .ir(&[
            "review",
            "write",
            id,
            "--response",
            "isolation approved by two engineers in six minutes",
            "--root-cause",
            "port 22 open to 0.0.0.0/0 on web-prod",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let closed = json(&r.ir(&["review", "close", id, "--json"]).await, 0);
    assert_eq!(
        closed["reviewed"]["review"]["closedBy"],
        r.alice.arn.as_str()
    );
    assert!(closed["reviewed"]["anchor"]["hash"].is_string(), "{closed}");
    let rewrite = r.ir(&["review", "write", id, "--timeline", "again"]).await;
    assert_eq!(rewrite.status.code(), Some(4), "{}", stderr(&rewrite));

    // Stored on the incident.
    let incident = r.store().get(id).await?.unwrap();
    assert_eq!(incident.summary.status, Status::Postmortem);
    let review = incident.review.unwrap();
    assert_eq!(
        review.sections.timeline,
        "09:00 GuardDuty finding\n09:04 isolation approved"
    );
    assert_eq!(
        review
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.status))
            .collect::<Vec<_>>(),
        [("A1", ItemStatus::Done), ("A2", ItemStatus::Open)]
    );
    assert_eq!(
        review.items[0].resolution.as_deref(),
        Some("security group changed")
    );

    // Audited, in order, under alice; the chain verifies and is anchored to its head.
    let actions = r.chain_actions().await;
    let after_resolved: Vec<&str> = actions
        .iter()
        .skip_while(|(a, _)| a != "resolved")
        .skip(1)
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        after_resolved,
        [
            "review-opened",
            "review-written",
            "review-item-added",
            "review-item-added",
            "review-item-closed",
            "review-written",
            "review-closed"
        ]
    );
    assert!(
        actions
            .iter()
            .filter(|(a, _)| a.starts_with("review-"))
            .all(|(_, actor)| actor == &r.alice.arn),
        "{actions:?}"
    );
    let chain = AuditLog::new(r.clients.clone(), r.names.clone())
        .chain(id)
        .await?;
    let written: Vec<AuditEvent> = chain
        .iter()
        .filter(|rec| rec.action == "review-written")
        .map(|rec| rec.event().unwrap())
        .collect();
    match written.first() {
        Some(AuditEvent::ReviewWritten(w)) => {
            let names: Vec<&str> = w.sections.iter().map(|s| s.section.as_str()).collect();
            assert_eq!(names, ["timeline", "detection"]);
            assert_eq!(
                w.sections[0].sha256,
                ir_tests::sha256_hex(review.sections.timeline.as_bytes())
            );
        }
        other => panic!("{other:?}"),
    }
    let verified = json(&r.ir(&["audit", "verify", id, "--json"]).await, 0);
    assert_eq!(verified["unanchored"], 0, "{verified}");
    assert_eq!(verified["records"].as_u64(), Some(chain.len() as u64));

    // Shown, alone and with the incident: the open item, the review date.
    let shown = json(&r.ir(&["review", "show", id, "--json"]).await, 0);
    assert_eq!(shown["openItems"], serde_json::json!(["A2"]));
    assert_eq!(shown["overdueItems"], serde_json::json!([]));
    let text = r.ir(&["review", "show", id]).await;
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    assert!(
        stdout(&text).contains("## Root cause") && stdout(&text).contains("port 22 open"),
        "{}",
        stdout(&text)
    );
    let full = json(&r.ir(&["incidents", "show", id, "--json"]).await, 0);
    assert_eq!(
        full["review"]["openItems"],
        serde_json::json!(["A2"]),
        "{full}"
    );
    assert_eq!(full["review"]["review"]["reviewDate"], expected.as_str());
    let show = r.ir(&["incidents", "show", id]).await;
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert!(
        stdout(&show).contains(&format!(
            "Post-incident review: held on {expected} (closed); 1 open action item(s), 0 overdue"
        )),
        "{}{}",
        stdout(&show),
        stderr(&show)
    );
    Ok(())
}

#[tokio::test]
async fn open_items_past_their_due_date_are_listed_as_overdue() -> TestResult {
    let r = setup("review-overdue").await;
    let id = r.incident.as_str();
    // Resolved twenty days ago (the recorder, as `ir resolve` runs it, at that time).
    let store = r.store();
    let long_ago = OffsetDateTime::now_utc() - Duration::days(20);
    for (from, to) in [
        (Status::Triage, Status::Containment),
        (Status::Containment, Status::Contained),
    ] {
        store
            .transition(id, from, to, long_ago, IncidentPatch::default())
            .await?;
    }
    let settings = RecorderSettings {
        evidence_bucket: r.bucket.clone(),
        evidence: ir_core::config::EvidenceConfig::default(),
        slots: SlotSettings::default(),
    };
    Recorder::new(r.clients.clone(), r.names.clone(), settings)
        .resolved_as_is(id, &r.alice.arn, "resolve", "rebuilt", long_ago)
        .await?;

    let none = r.ir(&["review", "overdue"]).await;
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert_eq!(stdout(&none), "nothing overdue\n");

    let out = r.ir(&["review", "open", id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let resolved_day = utc_day(long_ago);
    let past = (resolved_day + Duration::days(5)).to_string();
    let future = (utc_day(OffsetDateTime::now_utc()) + Duration::days(10)).to_string();
    for (title, due) in [
        ("Rotate the deploy keys", &past),
        ("Patch the AMI", &future),
    ] {
        let out = r
            .ir(&[
                "review",
                "item",
                "add",
                id,
                "--title",
                title,
                "--owner",
                "team-platform",
                "--due",
                due,
            ])
            .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let listed = json(&r.ir(&["review", "overdue", "--json"]).await, 0);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["incidentId"], id);
    assert_eq!(rows[0]["item"]["id"], "A1");
    assert_eq!(rows[0]["daysOverdue"], 15);
    let text = r.ir(&["review", "overdue"]).await;
    assert!(
        stdout(&text).contains("Rotate the deploy keys")
            && !stdout(&text).contains("Patch the AMI")
            && stdout(&text).contains("1 overdue action item(s)"),
        "{}",
        stdout(&text)
    );
    let show = r.ir(&["review", "show", id]).await;
    assert!(
        stdout(&show).contains("OVERDUE by 15d"),
        "{}",
        stdout(&show)
    );
    let show = r.ir(&["incidents", "show", id]).await;
    assert!(
        stdout(&show).contains("1 overdue") && stdout(&show).contains("OVERDUE by 15d"),
        "{}{}",
        stdout(&show),
        stderr(&show)
    );

    // Done: nothing overdue any more.
    let out = r.ir(&["review", "item", "close", id, "A1", "--done"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let none = json(&r.ir(&["review", "overdue", "--json"]).await, 0);
    assert_eq!(none, Value::Array(vec![]));
    Ok(())
}

#[tokio::test]
async fn concurrent_items_are_all_kept_with_distinct_ids() -> TestResult {
    let r = setup("review-race").await;
    r.resolve().await;
    let id = r.incident.clone();
    // Racing writers, each request atomic as DynamoDB's are (moto's are not on their own).
    let clients = ir_tests::serialized_clients(r.cloud).await;
    let settings = ReviewSettings {
        recorder: RecorderSettings {
            evidence_bucket: r.bucket.clone(),
            evidence: ir_core::config::EvidenceConfig {
                retention_days: 1,
                ..Default::default()
            },
            slots: SlotSettings::default(),
        },
        review: ir_core::config::PostIncidentReview::default(),
    };
    let policy = ApproverPolicy::one_role("security_engineer", &[&r.role_arn]);
    let now = OffsetDateTime::now_utc();
    let open = ReviewRequest {
        incident_id: id.clone(),
        change: ReviewChange::Open { date: None },
    };
    change_review(
        &clients,
        &r.names,
        &settings,
        &policy,
        &open,
        &r.alice.arn,
        now,
    )
    .await?;
    let due = (utc_day(now) + Duration::days(30)).to_string();
    let adds = (0..6).map(|k| {
        let req = ReviewRequest {
            incident_id: id.clone(),
            change: ReviewChange::AddItem {
                title: format!("item {k}"),
                owner: format!("owner-{k}"),
                due: due.clone(),
                jira_key: None,
            },
        };
        let (clients, names, settings, policy, caller) = (
            clients.clone(),
            r.names.clone(),
            settings.clone(),
            policy.clone(),
            r.alice.arn.clone(),
        );
        async move { change_review(&clients, &names, &settings, &policy, &req, &caller, now).await }
    });
    let results = futures_util::future::join_all(adds).await;
    let mut ids: Vec<String> = results
        .into_iter()
        .map(|x| x.unwrap().item.unwrap().id)
        .collect();
    ids.sort();
    let review = r.store().get(&id).await?.unwrap().review.unwrap();
    let mut stored: Vec<(String, String)> = review
        .items
        .iter()
        .map(|i| (i.id.clone(), i.title.clone()))
        .collect();
    stored.sort();
    // Every writer's item kept, under the id it was told.
    assert_eq!(stored.len(), 6, "{stored:?}");
    let mut stored_ids: Vec<String> = stored.iter().map(|(i, _)| i.clone()).collect();
    stored_ids.sort();
    assert_eq!(ids, stored_ids);
    let mut titles: Vec<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
    titles.sort_unstable();
    assert_eq!(
        titles,
        ["item 0", "item 1", "item 2", "item 3", "item 4", "item 5"]
    );
    // One audit record per item added, each naming its own item.
    let added = r
        .chain_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "review-item-added")
        .count();
    assert_eq!(added, 6);

    // Closing one item twice at once: exactly one wins.
    let closes = (0..2).map(|_| {
        let req = ReviewRequest {
            incident_id: id.clone(),
            change: ReviewChange::CloseItem {
                id: "A3".into(),
                closing: Closing::Done,
                note: None,
            },
        };
        let (clients, names, settings, policy, caller) = (
            clients.clone(),
            r.names.clone(),
            settings.clone(),
            policy.clone(),
            r.alice.arn.clone(),
        );
        async move { change_review(&clients, &names, &settings, &policy, &req, &caller, now).await }
    });
    let results = futures_util::future::join_all(closes).await;
    assert_eq!(
        results.iter().filter(|x| x.is_ok()).count(),
        1,
        "{results:?}"
    );
    Ok(())
}
