//! The whole suite offline, end to end: a GuardDuty finding delivered to the real `ir-ingest`
//! binary (through cargo lambda's Invoke API), the committed state machines executing on the
//! emulator and invoking the real function binaries, the responder deciding with the real `ir`
//! CLI, and the victim read back from the emulator.
//!
//! Needs the workspace's binaries: `cargo build --workspace --bins --tests` (the test command
//! does it first). Each test starts its own local cloud ([`Offline`]).

// A test stops loudly on anything unexpected, helpers included.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::correlate;
use ir_core::incident::Status;
use ir_tests::offline::{ConfigFrom, Holder, Offline, PLAYBOOK, Settings, VictimState};
use ir_tests::{ACCOUNT_ID, REGION, TestResult};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub(crate) const GATE_WAIT: Duration = Duration::from_secs(60);
pub(crate) const RUN_WAIT: Duration = Duration::from_secs(120);
/// The gated steps of the immediate-isolation plan for an instance (disable-access-keys is for
/// IAM users: not in the plan).
pub(crate) const GATES: [&str; 2] = ["revoke-credentials", "isolate-instance"];

pub(crate) fn incident_for(finding_id: &str) -> String {
    correlate::incident_id(&format!("guardduty:{ACCOUNT_ID}:{REGION}:{finding_id}"))
}

/// Delivers the bundled finding about the victim, after giving it three resolved incidents:
/// a high finding on a critical asset with a listed indicator and that history scores critical,
/// which routes it to immediate-isolation.
pub(crate) async fn deliver(off: &Offline, finding_id: &str) -> String {
    let now = OffsetDateTime::now_utc();
    off.seed_history(3, now).await.unwrap();
    let envelope = off
        .victim
        .finding(finding_id, now, time::Duration::minutes(5))
        .unwrap();
    let answer = off.invoke("ir-ingest", &envelope).await.unwrap();
    assert_eq!(answer.error, None, "{:?}", answer.body);
    let id = incident_for(finding_id);
    assert!(answer.body.to_string().contains(&id), "{}", answer.body);
    id
}

/// `ir <verdict>` as the responder (alice).
async fn decide(off: &Offline, verdict: &str, incident: &str, step: &str) -> Value {
    decide_as(off, &off.responder, verdict, incident, step).await
}

/// A critical step's approval by the two people the default config requires: alice's is
/// counted, bob's decides and resumes the execution (its answer is returned).
pub(crate) async fn approve_by_two(off: &Offline, incident: &str, step: &str) -> Value {
    let first = decide_as(off, &off.people.alice, "approve", incident, step).await;
    assert_eq!(first["resumed"]["resumed"], false, "{first}");
    assert_eq!(first["resumed"]["approvals"], json!(["alice"]), "{first}");
    assert_eq!(first["resumed"]["approvalsRequired"], 2, "{first}");
    let second = decide_as(off, &off.people.bob, "approve", incident, step).await;
    assert_eq!(second["resumed"]["resumed"], true, "{second}");
    assert_eq!(
        second["resumed"]["approvals"],
        json!(["alice", "bob"]),
        "{second}"
    );
    second
}

async fn decide_as(
    off: &Offline,
    who: &ir_tests::offline::Responder,
    verdict: &str,
    incident: &str,
    step: &str,
) -> Value {
    let out = off
        .ir_as(
            who,
            &[
                verdict,
                incident,
                "--step",
                step,
                "--reason",
                "on-call review",
                "--json",
            ],
        )
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ir {verdict}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn playbook_run(off: &Offline, incident: &str) -> ExecutionStatus {
    let arn = off.execution_arn(off.playbook_arn(PLAYBOOK), incident);
    off.wait_for_execution(&arn, RUN_WAIT).await.unwrap()
}

pub(crate) async fn executions(off: &Offline, machine: &str) -> Vec<String> {
    off.clients
        .sfn()
        .list_executions()
        .state_machine_arn(machine)
        .send()
        .await
        .unwrap()
        .executions()
        .iter()
        .map(|e| e.name().to_owned())
        .collect()
}

pub(crate) async fn audit_actions(off: &Offline, incident: &str) -> Vec<(String, Value)> {
    ir_aws::store::AuditLog::new(off.clients.clone(), off.names.clone())
        .chain(incident)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.detail))
        .collect()
}

#[tokio::test]
async fn an_approved_finding_is_contained_with_evidence_and_a_verified_audit_chain() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a001").await;

    for step in GATES {
        let asked = off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        assert!(!asked.requester.is_empty());
        let decided = approve_by_two(&off, &incident, step).await;
        assert_eq!(
            decided["resumed"]["decidedBy"],
            off.people.bob.arn.as_str(),
            "{decided}"
        );
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );

    // The incident: contained, critical, with its timeline.
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.summary.status, Status::Contained);
    assert_eq!(stored.summary.severity, ir_core::Severity::Critical);
    assert_eq!(stored.summary.playbook.as_deref(), Some(PLAYBOOK));
    let t = &stored.summary.timeline;
    let contained = t.contained_at.expect("containedAt");
    assert!(t.triaged_at.is_some_and(|at| at <= contained));
    assert!(contained >= t.detected_at);

    // The victim: every interface in the one isolation group, the role's sessions revoked by a
    // new deny policy next to its own.
    let after = off.victim.state(&off.clients).await?;
    let isolation: BTreeSet<&Vec<String>> = after.interface_groups.values().collect();
    assert_eq!(isolation.len(), 1, "{after:?}");
    let group = isolation.into_iter().next().unwrap();
    assert_eq!(group.len(), 1, "{after:?}");
    for (eni, groups) in &before.interface_groups {
        assert!(
            !groups.contains(&group[0]),
            "{eni} was already isolated: {before:?}"
        );
    }
    assert!(after.role_policies.contains(&"app-data".to_owned()));
    assert_eq!(
        after.role_policies.len(),
        before.role_policies.len() + 1,
        "{after:?}"
    );

    // Evidence: the manifest and what it lists are in the locked bucket.
    let listed = off
        .clients
        .s3()
        .list_objects_v2()
        .bucket(&off.bucket)
        .prefix(format!("incidents/{incident}/"))
        .send()
        .await?;
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.iter().any(|k| k.contains("/manifests/")), "{keys:?}");

    // Audit: each approval counted under its person, each step decided by the second, each
    // action's record, and a chain that verifies against its anchors with the real CLI.
    let actions = audit_actions(&off, &incident).await;
    let of = |action: &str| -> Vec<&Value> {
        actions
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, d)| d)
            .collect()
    };
    let (counted, approvals) = (of("approval-counted"), of("approved"));
    assert_eq!(counted.len(), GATES.len(), "{actions:?}");
    assert_eq!(approvals.len(), GATES.len(), "{actions:?}");
    assert!(
        counted
            .iter()
            .all(|d| d["approver"] == off.people.alice.arn.as_str() && d["person"] == "alice")
    );
    assert!(
        approvals
            .iter()
            .all(|d| d["approver"] == off.people.bob.arn.as_str()
                && d["approvals"] == json!(["alice", "bob"])
                && d["approvalsRequired"] == 2)
    );
    for step in [
        "collect-evidence",
        "snapshot-volumes",
        "revoke-credentials",
        "isolate-instance",
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, d)| a.starts_with("action:") && d["step"] == step),
            "{step}: {actions:?}"
        );
    }
    let verified = off
        .ir_as_responder(&["audit", "verify", &incident, "--json"])
        .await?;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let verified: Value = serde_json::from_slice(&verified.stdout)?;
    assert_eq!(verified["records"].as_u64(), Some(actions.len() as u64));
    assert!(
        verified["anchorsVerified"].as_u64() >= Some(1),
        "{verified}"
    );

    // One triage and one playbook execution, both named after the incident.
    assert_eq!(
        executions(&off, off.triage_arn()).await,
        std::slice::from_ref(&incident)
    );
    assert_eq!(
        executions(&off, off.playbook_arn(PLAYBOOK)).await,
        std::slice::from_ref(&incident)
    );
    Ok(())
}

/// The deployment's config in an SSM parameter names carol's session as the only security
/// engineer (level 0 of a critical gate) and keeps every playbook in dry-run; the deployment's
/// parameters, applied over it, make bob's session the security lead (`IR_APPROVERS_SECURITY_LEAD`)
/// and put immediate-isolation in enforce mode (`IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION`). alice,
/// whose role the default config makes the security engineer, holds no role here and is refused
/// by the decision function before it reads or writes anything; carol's approval counts at level
/// 0, bob's (a lead may decide at an engineer's level) resumes the step; and the victim is
/// contained, which only the overlaid mode allows.
#[tokio::test]
async fn a_config_in_ssm_with_the_deployments_parameters_decides_who_approves() -> TestResult {
    let off = Offline::start(Settings {
        enforce: Vec::new(),
        config_from: ConfigFrom::SsmParameter,
        approver_roles: vec![
            ("security_engineer".into(), vec![Holder::Person("carol")]),
            ("security_lead".into(), vec![Holder::LeadRole]),
        ],
        approvers_overlay: vec![("security_lead".into(), vec![Holder::Person("bob")])],
        mode_overlay: vec![(PLAYBOOK.into(), "enforce".into())],
        ..Settings::default()
    })
    .await?;
    let parameter = off.config_parameter.clone().expect("the config parameter");
    let env = off.environment();
    assert!(
        env.iter()
            .any(|(k, v)| k == "IR_CONFIG_SSM_PARAMETER" && *v == parameter)
            && !env.iter().any(|(k, _)| k == "IR_CONFIG_FILE"),
        "{env:?}"
    );
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a007").await;

    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        // alice holds no role of the SSM config: refused by policy, nothing counted.
        let out = off
            .ir_as(
                &off.people.alice,
                &["approve", &incident, "--step", step, "--reason", "mine"],
            )
            .await?;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "refused by policy: {said}");
        assert!(
            said.contains("holds no role of notifications.approver_roles"),
            "{said}"
        );
        // carol, the one security engineer, at level 0: one of two.
        let first = decide_as(&off, &off.people.carol, "approve", &incident, step).await;
        assert_eq!(first["resumed"]["resumed"], false, "{first}");
        assert_eq!(first["resumed"]["approvals"], json!(["carol"]), "{first}");
        // bob, the lead by the deployment's parameter: the second person, and the step runs.
        let second = decide_as(&off, &off.people.bob, "approve", &incident, step).await;
        assert_eq!(second["resumed"]["resumed"], true, "{second}");
        assert_eq!(
            second["resumed"]["approvals"],
            json!(["carol", "bob"]),
            "{second}"
        );
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    let after = off.victim.state(&off.clients).await?;
    assert_ne!(after, before, "enforce mode came from the overlay");
    let isolation: BTreeSet<&Vec<String>> = after.interface_groups.values().collect();
    assert_eq!(isolation.len(), 1, "{after:?}");

    let actions = audit_actions(&off, &incident).await;
    let counted: Vec<&Value> = actions
        .iter()
        .filter(|(a, _)| a == "approval-counted")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(counted.len(), GATES.len(), "{actions:?}");
    assert!(
        counted
            .iter()
            .all(|d| d["person"] == "carol" && d["level"] == 0),
        "{counted:?}"
    );
    // A caller who holds no role is refused before the function reads or writes anything:
    // alice's attempts left no record on the incident.
    assert!(
        actions
            .iter()
            .all(|(_, d)| !d.to_string().contains(&off.people.alice.arn)),
        "{actions:?}"
    );
    Ok(())
}

/// `ir <args> --json` as printed, with whether it exited 0.
fn json_out(out: &std::process::Output) -> (bool, Value) {
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), value)
}

/// `ir release --enforce` as the responder is refused as a `Conflict` saying `why`.
async fn release_refused(off: &Offline, incident: &str, why: &str) {
    let (ok, out) = json_out(
        &off.ir_as_responder(&["release", incident, "--enforce", "--json"])
            .await
            .unwrap(),
    );
    assert!(!ok, "{out}");
    assert_eq!(out["error"], "Conflict", "{out}");
    assert!(out["message"].as_str().unwrap().contains(why), "{out}");
}

#[tokio::test]
async fn a_release_restores_the_victim_resolves_the_incident_and_anchors_the_chain() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a005").await;

    // While the playbook waits at its first gate, a release would race it: refused.
    off.wait_for_approval(&incident, GATES[0], 0, GATE_WAIT)
        .await?;
    release_refused(&off, &incident, "playbook has not finished").await;
    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        approve_by_two(&off, &incident, step).await;
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    let contained = off.victim.state(&off.clients).await?;
    assert_ne!(contained, before);
    let chain_contained = audit_actions(&off, &incident).await.len();

    // Someone who is not an approver cannot release it.
    let (ok, refused) = json_out(
        &off.ir_as_non_approver(&["release", &incident, "--enforce", "--json"])
            .await?,
    );
    assert!(!ok, "{refused}");
    assert_eq!(refused["error"], "AccessDenied", "{refused}");

    // Dry-run (the default): the plan, every change restoring what containment changed;
    // nothing changes and nothing is written.
    let (ok, planned) = json_out(
        &off.ir_as_responder(&["release", &incident, "--json"])
            .await?,
    );
    assert!(ok, "{planned}");
    let plan = planned["released"]["report"]["changes"].as_array().unwrap();
    // Every interface's groups, and the role's deny policy removed.
    assert!(plan.len() > before.interface_groups.len(), "{planned}");
    assert!(
        plan.iter().any(|c| c["attribute"]
            .as_str()
            .is_some_and(|a| a.starts_with("inline-policy:ir-revoke-sessions-"))
            && c["after"].is_null()),
        "{planned}"
    );
    assert!(
        plan.iter()
            .all(|c| c["status"] == "planned" || c["status"] == "unchanged"),
        "{planned}"
    );
    for (eni, groups) in &before.interface_groups {
        let change = plan
            .iter()
            .find(|c| c["target"] == eni.as_str())
            .unwrap_or_else(|| panic!("{eni} not in the plan: {planned}"));
        let mut planned_groups: Vec<String> =
            serde_json::from_value(change["after"].clone()).unwrap();
        planned_groups.sort();
        assert_eq!(&planned_groups, groups, "{planned}");
        assert_eq!(change["status"], "planned", "{planned}");
    }
    assert_eq!(off.victim.state(&off.clients).await?, contained);
    assert_eq!(audit_actions(&off, &incident).await.len(), chain_contained);
    assert_eq!(
        off.incident(&incident).await?.unwrap().summary.status,
        Status::Contained
    );

    // Enforce: the victim reads back exactly as before the incident; the incident is resolved.
    let (ok, released) = json_out(
        &off.ir_as_responder(&[
            "release",
            &incident,
            "--enforce",
            "--reason",
            "eradicated: instance rebuilt from a clean image",
            "--json",
        ])
        .await?,
    );
    assert!(ok, "{released}");
    assert_eq!(released["released"]["status"], "resolved", "{released}");
    assert_eq!(off.victim.state(&off.clients).await?, before);
    let stored = off.incident(&incident).await?.unwrap();
    assert_eq!(stored.summary.status, Status::Resolved);
    let t = &stored.summary.timeline;
    assert!(t.resolved_at.is_some_and(|r| Some(r) >= t.contained_at));

    // Audited under the responder, and the chain verifies against both anchors.
    let actions = audit_actions(&off, &incident).await;
    let (last_action, resolved) = actions.last().unwrap();
    assert_eq!(last_action, "resolved", "{actions:?}");
    assert_eq!(resolved["by"], off.responder.arn.as_str());
    assert_eq!(
        resolved["reason"],
        "eradicated: instance rebuilt from a clean image"
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "action:ir-release-containment" && d["outcome"] == "applied"),
        "{actions:?}"
    );
    let (ok, verified) = json_out(
        &off.ir_as_responder(&["audit", "verify", &incident, "--json"])
            .await?,
    );
    assert!(ok, "{verified}");
    assert_eq!(verified["records"].as_u64(), Some(actions.len() as u64));
    assert!(
        verified["anchorsVerified"].as_u64() >= Some(2),
        "{verified}"
    );

    // A second release does nothing and says why.
    release_refused(&off, &incident, "already resolved").await;
    assert_eq!(audit_actions(&off, &incident).await.len(), actions.len());
    Ok(())
}

/// Terminates the victim from outside the suite (the workload rebuilt elsewhere). Isolation
/// turned termination protection on: whoever terminates lifts it first.
async fn terminate_victim(off: &Offline) -> TestResult {
    off.clients
        .ec2()
        .modify_instance_attribute()
        .instance_id(&off.victim.instance_id)
        .disable_api_termination(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await?;
    off.clients
        .ec2()
        .terminate_instances()
        .instance_ids(&off.victim.instance_id)
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_release_over_a_gone_instance_restores_the_rest_only_with_consent() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a00a").await;
    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        approve_by_two(&off, &incident, step).await;
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    let contained = off.victim.state(&off.clients).await?;
    assert_eq!(
        contained.role_policies.len(),
        before.role_policies.len() + 1,
        "the revoke-sessions deny is on the instance role"
    );
    terminate_victim(&off).await?;
    let chain_before = audit_actions(&off, &incident).await.len();

    // The plan says what cannot be restored, and what can.
    let (ok, plan) = json_out(
        &off.ir_as_responder(&["release", &incident, "--json"])
            .await?,
    );
    assert!(ok, "{plan}");
    let gone = plan["released"]["notRestored"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(gone.len(), 1, "{plan}");
    assert!(
        gone[0]
            .as_str()
            .is_some_and(|g| g.contains(&off.victim.instance_id)),
        "{plan}"
    );
    assert_eq!(
        audit_actions(&off, &incident).await.len(),
        chain_before,
        "a plan writes nothing"
    );

    // Enforce without consent: refused before anything changes, with both ways out.
    let out = off
        .ir_as_responder(&["release", &incident, "--enforce", "--reason", "rebuilt"])
        .await?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("--force") && said.contains(&format!("ir resolve {incident}")),
        "{said}"
    );
    assert_eq!(
        off.victim.role_policies(&off.clients).await?,
        contained.role_policies,
        "nothing restored"
    );
    let refused = off.incident(&incident).await?.expect("the incident");
    assert_eq!(refused.summary.status, Status::Contained);
    assert!(
        refused
            .last_error
            .is_some_and(|e| e.message.contains(&off.victim.instance_id))
    );

    // `--force` needs `--enforce`.
    let out = off
        .ir_as_responder(&["release", &incident, "--force"])
        .await?;
    assert_eq!(out.status.code(), Some(2));

    // With consent: the rest restored, the incident resolved, the gap in the audit chain.
    let (ok, done) = json_out(
        &off.ir_as_responder(&[
            "release",
            &incident,
            "--enforce",
            "--force",
            "--reason",
            "instance rebuilt",
            "--json",
        ])
        .await?,
    );
    assert!(ok, "{done}");
    assert_eq!(done["released"]["status"], "resolved", "{done}");
    assert_eq!(
        off.victim.role_policies(&off.clients).await?,
        before.role_policies,
        "the deny on the role is removed"
    );
    let actions = audit_actions(&off, &incident).await;
    let (last, detail) = actions.last().expect("records");
    assert_eq!(last, "resolved");
    assert_eq!(detail["notRestored"], serde_json::json!(gone));
    assert!(detail["released"].as_u64() > Some(0), "{detail}");
    assert_eq!(detail["by"], off.responder.arn.as_str());
    Ok(())
}

#[tokio::test]
async fn a_terminated_victim_cannot_be_restored_and_is_resolved_as_it_is() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a006").await;

    // Resolving under a running playbook would race it: refused, nothing written.
    off.wait_for_approval(&incident, GATES[0], 0, GATE_WAIT)
        .await?;
    let resolve = |who: &'static str| {
        let args = ["resolve", incident.as_str(), "--reason", who, "--json"].map(str::to_owned);
        let off = &off;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            json_out(&off.ir_as_responder(&args).await.unwrap())
        }
    };
    let (ok, out) = resolve("too early").await;
    assert!(!ok && out["error"] == "Conflict", "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("playbook has not finished"),
        "{out}"
    );
    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        approve_by_two(&off, &incident, step).await;
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    let contained = off.incident(&incident).await?.unwrap();
    assert_eq!(contained.summary.status, Status::Contained);

    // The instance is terminated (the workload rebuilt elsewhere): nothing can be restored, and
    // the release says how to end the incident instead.
    terminate_victim(&off).await?;
    let out = off
        .ir_as_responder(&["release", &incident, "--enforce"])
        .await?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "not found: {said}");
    assert!(said.contains(&format!("ir resolve {incident}")), "{said}");
    assert_eq!(
        off.incident(&incident).await?.unwrap().summary.status,
        Status::Contained
    );

    // Not an approver: refused.
    let out = off
        .ir_as_non_approver(&["resolve", &incident, "--reason", "mine", "--json"])
        .await?;
    assert_eq!(out.status.code(), Some(4), "refused by policy");
    let (_, refused) = json_out(&out);
    assert_eq!(refused["error"], "AccessDenied", "{refused}");
    // An incident the suite has no record of: not found.
    let out = off
        .ir_as_responder(&["resolve", &ir_tests::incident_id(), "--reason", "x"])
        .await?;
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // Resolved as it is: the records of what containment changed stay, the chain is anchored.
    let (ok, resolved) = resolve("terminated; rebuilt from IaC").await;
    assert!(ok, "{resolved}");
    assert_eq!(resolved["resolved"]["status"], "resolved", "{resolved}");
    assert_eq!(resolved["resolved"]["from"], "contained", "{resolved}");
    assert_eq!(
        resolved["resolved"]["kept"].as_u64(),
        Some(contained.records.len() as u64)
    );
    assert!(!contained.records.is_empty());
    let stored = off.incident(&incident).await?.unwrap();
    assert_eq!(stored.summary.status, Status::Resolved);
    assert_eq!(stored.records, contained.records);
    let actions = audit_actions(&off, &incident).await;
    let (last, detail) = actions.last().unwrap();
    assert_eq!(last, "resolved", "{actions:?}");
    assert_eq!(detail["step"], "resolve");
    assert_eq!(detail["released"], 0);
    assert_eq!(detail["reason"], "terminated; rebuilt from IaC");
    assert_eq!(detail["by"], off.responder.arn.as_str());
    let (ok, verified) = json_out(
        &off.ir_as_responder(&["audit", "verify", &incident, "--json"])
            .await?,
    );
    assert!(ok, "{verified}");
    assert_eq!(verified["records"].as_u64(), Some(actions.len() as u64));
    assert_eq!(
        verified["unanchored"]["records"].as_u64().unwrap_or(0),
        0,
        "{verified}"
    );

    // Once: a second resolution does nothing and says why.
    let (ok, again) = resolve("again").await;
    assert!(!ok && again["error"] == "Conflict", "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already resolved"),
        "{again}"
    );
    assert_eq!(audit_actions(&off, &incident).await.len(), actions.len());
    Ok(())
}

#[tokio::test]
async fn a_rejection_leaves_the_victim_untouched() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let before = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a002").await;
    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        let decided = decide(&off, "reject", &incident, step).await;
        assert_eq!(
            decided["resumed"]["decidedBy"],
            off.responder.arn.as_str(),
            "{decided}"
        );
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    assert_eq!(off.victim.state(&off.clients).await?, before);

    let actions = audit_actions(&off, &incident).await;
    let not_run: Vec<&Value> = actions
        .iter()
        .filter(|(a, _)| a == "step-not-approved")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(not_run.len(), GATES.len(), "{actions:?}");
    for step in GATES {
        assert!(
            !actions
                .iter()
                .any(|(a, d)| a.starts_with("action:") && d["step"] == step),
            "{step} ran: {actions:?}"
        );
    }
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_ne!(stored.summary.status, Status::Contained);

    // Nothing was contained and nothing is to be undone: the responder resolves it as it is.
    let (ok, resolved) = json_out(
        &off.ir_as_responder(&[
            "resolve",
            &incident,
            "--reason",
            "false positive: the owner's load test",
            "--json",
        ])
        .await?,
    );
    assert!(ok, "{resolved}");
    assert_eq!(resolved["resolved"]["from"], "containment", "{resolved}");
    assert_eq!(resolved["resolved"]["kept"], 0, "{resolved}");
    assert_eq!(
        off.incident(&incident).await?.unwrap().summary.status,
        Status::Resolved
    );
    assert_eq!(off.victim.state(&off.clients).await?, before);
    Ok(())
}

#[tokio::test]
async fn an_unanswered_gate_escalates_then_leaves_the_victim_untouched() -> TestResult {
    let off = Offline::start(Settings {
        escalation: vec![("critical".into(), vec!["2s".into(), "2s".into()])],
        ..Settings::default()
    })
    .await?;
    let before: VictimState = off.victim.state(&off.clients).await?;
    let incident = deliver(&off, "e2e0000000000000000000000000a003").await;
    // Nobody answers: each gate asks level 0, times out, asks level 1, times out, and the
    // configured default (reject) applies.
    for step in GATES {
        off.wait_for_approval(&incident, step, 0, GATE_WAIT).await?;
        off.wait_for_approval(&incident, step, 1, GATE_WAIT).await?;
    }
    assert_eq!(
        playbook_run(&off, &incident).await,
        ExecutionStatus::Succeeded
    );
    assert_eq!(off.victim.state(&off.clients).await?, before);
    let actions = audit_actions(&off, &incident).await;
    let requests = actions
        .iter()
        .filter(|(a, _)| a == "approval-requested")
        .count();
    assert_eq!(requests, 2 * GATES.len(), "{actions:?}");
    for step in GATES {
        assert!(
            !actions
                .iter()
                .any(|(a, d)| a.starts_with("action:") && d["step"] == step),
            "{step} ran: {actions:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn twenty_concurrent_deliveries_make_one_incident_and_one_execution() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let now = OffsetDateTime::now_utc();
    let finding_id = "e2e0000000000000000000000000a004";
    let envelope = off
        .victim
        .finding(finding_id, now, time::Duration::minutes(5))?;
    let answers = futures_join(&off, &envelope, 20).await;
    for a in &answers {
        assert_eq!(a.error, None, "{:?}", a.body);
    }
    let incident = incident_for(finding_id);
    let stored = off.incident(&incident).await?.expect("the incident");
    assert_eq!(stored.occurrences, 20);
    assert_eq!(stored.finding_count, 1);
    assert_eq!(
        executions(&off, off.triage_arn()).await,
        std::slice::from_ref(&incident)
    );
    Ok(())
}

/// `n` deliveries of `envelope` at once, each on its own connection.
async fn futures_join(
    off: &Offline,
    envelope: &[u8],
    n: usize,
) -> Vec<ir_tests::offline::Invocation> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let endpoint = off.lambda_endpoint();
        let body = envelope.to_vec();
        set.spawn(async move { ir_tests::offline::invoke_at(&endpoint, "ir-ingest", &body).await });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.unwrap().unwrap());
    }
    out
}
