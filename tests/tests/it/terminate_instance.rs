//! terminate-instance through its real binary: `ir-terminate-instance` served by cargo lambda
//! ([`Served`]) and invoked as the Lambda service invokes it, against the shared emulator, with
//! the deployment's configuration: the default one with immediate-isolation enforced and a gated
//! termination step after the isolation (no committed state machine has that step, so the whole
//! offline suite cannot run it; the tests play the playbook's part).
//!
//! Every test builds its own tables, instance and incident (triaged and recorded by the real
//! recorder, isolated and snapshotted by the real actions with their results recorded as the
//! playbook records them), and looks only at what it made. Approvals are written to the approvals
//! table as the decision path writes them.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceAttributeName, ResourceType, Tag, TagSpecification,
};
use ir_aws::Clients;
use ir_aws::store::{
    ApprovalRequest, ApprovalStatus, ApprovalStore, AuditLog, Ballot, Decided, IncidentStore,
    IsolationHolds, TaskToken,
};
use ir_core::Named;
use ir_core::action::{
    ActionReport, ChangeStatus, ContainmentRecord, ContainmentRequest, Outcome, plan_hash,
};
use ir_core::config::{
    Config, DEFAULT_ASSETS_YAML, DEFAULT_CONFIG_YAML, DEFAULT_THREAT_INTEL, EvidenceConfig, Mode,
};
use ir_core::enrich::{AssetRegistry, ThreatIntel};
use ir_core::incident::Status;
use ir_core::orchestration::RecordRequest;
use ir_core::{Decision, Engine, IngestOutput};
use ir_incident::recorder::{RecordOutput, Recorder, RecorderSettings};
use ir_tests::fixtures::{create_subnet, create_vpc, launch, run_instance};
use ir_tests::offline::{Invocation, Served, cloud_environment};
use ir_tests::{
    ACCOUNT_ID, Stores, containment_request, instance_resource, repo_root, stores, unique_name,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BINARY: &str = "ir-terminate-instance";
const PLAYBOOK: &str = "immediate-isolation";
const SNAPSHOT_STEP: &str = "snapshot-volumes";
const ISOLATE_STEP: &str = "isolate-instance";
const STEP: &str = "terminate-instance";
const SAMPLE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";
const SAMPLE_INSTANCE: &str = "i-0a1b2c3d4e5f60001";
const SAMPLE_FINDING_ID: &str = "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1";
const SAMPLE_ACCOUNT: &str = "111122223333";

/// The deployment under test: the default config, immediate-isolation enforced, a termination
/// after the isolation (gated, as the registry requires).
fn config_text() -> String {
    let isolate = "      - id: isolate-instance\n        action: cloud:security_group_deny_all\n        requires_approval: true\n";
    let trigger = "    trigger: severity == critical\n";
    assert!(DEFAULT_CONFIG_YAML.contains(isolate) && DEFAULT_CONFIG_YAML.contains(trigger));
    let text = DEFAULT_CONFIG_YAML
        .replacen(
            isolate,
            &format!(
                "{isolate}      - id: {STEP}\n        action: cloud:terminate_instance\n        requires_approval: true\n"
            ),
            1,
        )
        .replacen(trigger, &format!("{trigger}    mode: enforce\n"), 1);
    Config::from_yaml(&text).unwrap();
    text
}

/// The tables, the bucket and the served function of one test.
struct Setup {
    stores: Stores,
    served: Served,
    config: Config,
}

async fn setup() -> Setup {
    let stores = stores("term").await;
    let text = config_text();
    let config_file = std::env::temp_dir().join(format!("{}.yaml", unique_name("ir-terminate")));
    std::fs::write(&config_file, &text).unwrap();
    let mut env = cloud_environment(stores.cloud);
    for (name, value) in [
        ("IR_INCIDENTS_TABLE", &stores.names.incidents),
        ("IR_KEYS_TABLE", &stores.names.keys),
        ("IR_AUDIT_TABLE", &stores.names.audit),
        ("IR_APPROVALS_TABLE", &stores.names.approvals),
    ] {
        env.push((name.to_owned(), value.clone()));
    }
    env.push((
        "IR_CONFIG_FILE".to_owned(),
        config_file.display().to_string(),
    ));
    let served = Served::start(&[BINARY], &env).await.unwrap();
    Setup {
        stores,
        served,
        config: Config::from_yaml(&text).unwrap(),
    }
}

impl Setup {
    fn clients(&self) -> &Clients {
        &self.stores.clients
    }

    fn ec2(&self) -> &aws_sdk_ec2::Client {
        self.stores.clients.ec2()
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(
            self.clients().clone(),
            self.stores.names.clone(),
            RecorderSettings {
                evidence_bucket: self.stores.bucket.clone(),
                evidence: EvidenceConfig {
                    retention_days: 1,
                    ..EvidenceConfig::default()
                },
                slots: ir_incident::recorder::SlotSettings::default(),
            },
        )
    }

    /// Records a step's report as the playbook's `Recorded_<step>` does.
    async fn record_step(&self, incident: &str, report: &ActionReport) {
        let out = self
            .recorder()
            .record(RecordRequest::StepResult {
                incident_id: incident.to_owned(),
                step_id: report.step_id.clone(),
                report: report.clone(),
            })
            .await
            .unwrap();
        assert!(matches!(out, RecordOutput::Recorded(_)));
    }

    /// Invokes the served function with a request for `step` of `incident` on `instance`.
    async fn invoke(&self, incident: &str, instance: &str, mode: Mode) -> Invocation {
        let req = containment_request(incident, STEP, instance_resource(instance), mode);
        self.served
            .invoke(BINARY, &serde_json::to_vec(&req).unwrap())
            .await
            .unwrap()
    }

    /// The audit actions of the incident's chain, in order.
    async fn audit_actions(&self, incident: &str) -> Vec<(String, Value)> {
        AuditLog::new(self.clients().clone(), self.stores.names.clone())
            .chain(incident)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.action, r.detail))
            .collect()
    }
}

/// The report of a successful invocation.
#[track_caller]
fn report(answer: &Invocation) -> ActionReport {
    assert!(answer.error.is_none(), "{}", answer.body);
    serde_json::from_value(answer.body.clone()).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// The message of a failed invocation, after checking its stable name.
#[track_caller]
fn refused(answer: &Invocation, name: &str) -> String {
    assert_eq!(answer.error.as_deref(), Some(name), "{}", answer.body);
    answer.body["errorMessage"].as_str().unwrap().to_owned()
}

/// An instance with the given EBS volumes (device names), each deleted on termination; its id
/// and volume ids in mapping order.
async fn instance(ec2: &aws_sdk_ec2::Client, devices: &[&str]) -> (String, Vec<String>) {
    let vpc = create_vpc(ec2, "10.72.0.0/16").await;
    let subnet = create_subnet(ec2, &vpc, "10.72.1.0/24").await;
    let mut run = run_instance(ec2).subnet_id(&subnet);
    for d in devices {
        run = run.block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(*d)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(4)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    let launched = launch(run).await;
    let volumes = launched
        .block_device_mappings()
        .iter()
        .map(|m| m.ebs().unwrap().volume_id().unwrap().to_owned())
        .collect();
    (launched.instance_id().unwrap().to_owned(), volumes)
}

/// The incident a critical finding on `instance_id` opens, triaged with the deployment's config
/// and recorded (status containment, its plan holding the gated termination in enforce mode).
async fn incident(s: &Setup, instance_id: &str) -> String {
    incident_with(s, instance_id, |_| {}).await
}

/// [`incident`], its decision changed by `tamper` before it is recorded.
async fn incident_with(s: &Setup, instance_id: &str, tamper: impl FnOnce(&mut Decision)) -> String {
    let now = OffsetDateTime::now_utc();
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    let text = std::fs::read_to_string(repo_root().join(SAMPLE))
        .unwrap()
        .replace(SAMPLE_INSTANCE, instance_id)
        .replace(
            SAMPLE_FINDING_ID,
            &ir_tests::sha256_hex(unique_name("finding").as_bytes())[..32],
        )
        .replace(SAMPLE_ACCOUNT, ACCOUNT_ID)
        .replacen("\"severity\": 8,", "\"severity\": 9.5,", 1);
    let mut envelope: Value = serde_json::from_str(&text).unwrap();
    envelope["time"] = json!(at(now - time::Duration::minutes(1)));
    envelope["detail"]["createdAt"] = json!(at(now - time::Duration::minutes(1)));
    envelope["detail"]["updatedAt"] = json!(at(now - time::Duration::minutes(1)));
    envelope["detail"]["service"]["eventFirstSeen"] = json!(at(now - time::Duration::minutes(5)));
    envelope["detail"]["service"]["eventLastSeen"] = json!(at(now - time::Duration::minutes(2)));
    let normalized = ir_core::normalize(envelope.to_string().as_bytes()).unwrap();
    let input = IngestOutput::from_normalized(normalized, now)
        .incidents
        .remove(0);
    let store = IncidentStore::new(s.clients().clone(), s.stores.names.clone());
    for event in &input.events {
        store.ingest(event, input.detected_at).await.unwrap();
    }
    let engine = Engine::new(
        s.config.clone(),
        AssetRegistry::from_yaml(DEFAULT_ASSETS_YAML).unwrap(),
        ThreatIntel::parse(DEFAULT_THREAT_INTEL).unwrap(),
    );
    let enrichment = engine.enrich(&input.events, 0);
    let mut decision = engine
        .decide(
            &input.incident_id,
            &input.events,
            &enrichment,
            input.detected_at,
        )
        .unwrap();
    assert_eq!(decision.playbook.id, PLAYBOOK);
    let step = decision
        .playbook
        .steps
        .iter()
        .find(|p| p.id == STEP)
        .expect("the termination is planned");
    assert!(step.mode == Mode::Enforce && step.requires_approval && step.destructive);
    tamper(&mut decision);
    let out = s
        .recorder()
        .record(RecordRequest::Triaged {
            incident_id: input.incident_id.clone(),
            events: input.events.clone(),
            decision,
            detected_at: input.detected_at,
            revision: 0,
        })
        .await
        .unwrap();
    assert!(matches!(out, RecordOutput::Playbook(_)));
    input.incident_id
}

fn step_request(incident: &str, step: &str, instance: &str) -> ContainmentRequest {
    containment_request(incident, step, instance_resource(instance), Mode::Enforce)
}

/// The isolation step, enforced and recorded: termination protection on, volumes kept.
async fn isolate(s: &Setup, incident: &str, instance: &str) {
    let holds = IsolationHolds::new(s.clients().clone(), &s.stores.names);
    let report = ir_actions::ec2::isolate_instance(
        s.clients(),
        &holds,
        &step_request(incident, ISOLATE_STEP, instance),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    s.record_step(incident, &report).await;
    assert!(protection(s.ec2(), instance).await);
}

/// The snapshot step, enforced and recorded; the snapshot ids by volume.
async fn snapshot(s: &Setup, incident: &str, instance: &str) -> Vec<(String, String)> {
    let report = ir_actions::ec2::snapshot_volumes(
        s.clients(),
        &step_request(incident, SNAPSHOT_STEP, instance),
    )
    .await
    .unwrap();
    s.record_step(incident, &report).await;
    match report.artifacts {
        Some(ir_core::action::Artifacts::Snapshots { snapshots, .. }) => snapshots
            .into_iter()
            .map(|r| (r.volume_id, r.snapshot_id))
            .collect(),
        other => panic!("no snapshots: {other:?}"),
    }
}

/// The termination step approved by two engineers (a critical incident's gate needs two), for
/// `plan` (its hash when there is a plan).
async fn approve(s: &Setup, incident: &str, plan: Option<&ActionReport>) {
    let store = ApprovalStore::new(s.clients().clone(), s.stores.names.clone());
    let now = OffsetDateTime::now_utc();
    let hash = plan.map(|p| plan_hash(&p.changes));
    store
        .request(&ApprovalRequest {
            incident_id: incident.to_owned(),
            step_id: STEP.to_owned(),
            task_token: TaskToken::new("kms:sealed-token-of-the-test"),
            requester: "ir-request-approval".to_owned(),
            plan: plan.map_or(Value::Null, |p| serde_json::to_value(p).unwrap()),
            plan_hash: hash.clone(),
            level: 0,
            role: "security_engineer".to_owned(),
            approvals_required: 2,
            requested_at: now,
            expires_at: now + time::Duration::minutes(5),
            round: 0,
        })
        .await
        .unwrap();
    for person in ["alice", "bob"] {
        vote(s, incident, person, hash.as_deref()).await;
    }
    let approval = store.get(incident, STEP).await.unwrap().unwrap();
    assert_eq!(approval.status, ApprovalStatus::Approved);
}

async fn vote(s: &Setup, incident: &str, person: &str, hash: Option<&str>) -> Decided {
    let by = format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/SecurityEngineer/{person}");
    ApprovalStore::new(s.clients().clone(), s.stores.names.clone())
        .decide(
            incident,
            STEP,
            &Ballot {
                approve: true,
                person,
                decided_by: &by,
                reason: "the workload is exfiltrating",
                plan_hash: hash,
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
}

/// `DisableApiTermination` as EC2 reports it.
async fn protection(ec2: &aws_sdk_ec2::Client, instance: &str) -> bool {
    ec2.describe_instance_attribute()
        .instance_id(instance)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .unwrap()
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap()
}

/// The instance's state name as EC2 reports it.
async fn state(ec2: &aws_sdk_ec2::Client, instance: &str) -> String {
    ir_tests::fixtures::describe_instance(ec2, instance)
        .await
        .state()
        .and_then(|s| s.name())
        .unwrap()
        .as_str()
        .to_owned()
}

/// The instance is as it was: running, its termination protection on.
async fn untouched(s: &Setup, instance: &str) {
    assert_eq!(state(s.ec2(), instance).await, "running");
    assert!(protection(s.ec2(), instance).await);
}

#[tokio::test]
async fn refused_without_snapshots_even_when_approved_and_a_tagged_snapshot_is_no_record() {
    let s = setup().await;
    let (instance_id, volumes) = instance(s.ec2(), &["/dev/xvda", "/dev/xvdb"]).await;
    let id = incident(&s, &instance_id).await;
    isolate(&s, &id, &instance_id).await;
    // A snapshot of the first volume tagged as the suite tags its own: tags are not records.
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    s.ec2()
        .create_snapshot()
        .volume_id(&volumes[0])
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(tag(ir_actions::ec2::TAG_INCIDENT, &id))
                .tags(tag(ir_actions::ec2::TAG_INSTANCE, &instance_id))
                .build(),
        )
        .send()
        .await
        .unwrap();

    // The plan is refused: nothing to ask an approver about.
    let why = refused(
        &s.invoke(&id, &instance_id, Mode::DryRun).await,
        "Protected",
    );
    for v in &volumes {
        assert!(
            why.contains(&format!("{v} (/dev/xvd")) && why.contains("has no snapshot taken"),
            "{why}"
        );
    }
    // Approved anyway (no plan to bind to): the action itself still refuses.
    approve(&s, &id, None).await;
    let why = refused(
        &s.invoke(&id, &instance_id, Mode::Enforce).await,
        "Protected",
    );
    assert!(
        why.contains(&volumes[0]) && why.contains(&volumes[1]),
        "{why}"
    );
    untouched(&s, &instance_id).await;
    assert!(
        !s.audit_actions(&id)
            .await
            .iter()
            .any(|(a, _)| a.contains(BINARY)),
        "no termination recorded"
    );
}

#[tokio::test]
async fn refused_when_only_one_of_two_volumes_has_a_snapshot() {
    let s = setup().await;
    let (instance_id, volumes) = instance(s.ec2(), &["/dev/xvda"]).await;
    let id = incident(&s, &instance_id).await;
    isolate(&s, &id, &instance_id).await;
    let taken = snapshot(&s, &id, &instance_id).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].0, volumes[0]);

    // A second volume attached after the incident's snapshots were taken.
    let described = ir_tests::fixtures::describe_instance(s.ec2(), &instance_id).await;
    let zone = described
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap();
    let second = s
        .ec2()
        .create_volume()
        .availability_zone(zone)
        .size(2)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned();
    s.ec2()
        .attach_volume()
        .volume_id(&second)
        .instance_id(&instance_id)
        .device("/dev/xvdf")
        .send()
        .await
        .unwrap();
    approve(&s, &id, None).await;

    for mode in [Mode::DryRun, Mode::Enforce] {
        let why = refused(&s.invoke(&id, &instance_id, mode).await, "Protected");
        assert!(
            why.contains(&format!(
                "{second} (/dev/xvdf) has no snapshot taken for this incident"
            )),
            "{why}"
        );
        assert!(
            !why.contains(&volumes[0]),
            "the backed volume is not named: {why}"
        );
    }
    untouched(&s, &instance_id).await;
}

#[tokio::test]
async fn enforce_without_approval_is_not_approved_and_changes_nothing() {
    let s = setup().await;
    let (instance_id, _) = instance(s.ec2(), &["/dev/xvda", "/dev/xvdb"]).await;
    let id = incident(&s, &instance_id).await;
    isolate(&s, &id, &instance_id).await;
    snapshot(&s, &id, &instance_id).await;

    // Nobody was asked.
    let why = refused(
        &s.invoke(&id, &instance_id, Mode::Enforce).await,
        "NotApproved",
    );
    assert!(why.contains("none was requested"), "{why}");
    // Asked with the plan, approved by one engineer of the two a critical step needs.
    let plan = report(&s.invoke(&id, &instance_id, Mode::DryRun).await);
    let store = ApprovalStore::new(s.clients().clone(), s.stores.names.clone());
    let now = OffsetDateTime::now_utc();
    let hash = plan_hash(&plan.changes);
    store
        .request(&ApprovalRequest {
            incident_id: id.clone(),
            step_id: STEP.to_owned(),
            task_token: TaskToken::new("kms:sealed-token-of-the-test"),
            requester: "ir-request-approval".to_owned(),
            plan: serde_json::to_value(&plan).unwrap(),
            plan_hash: Some(hash.clone()),
            level: 0,
            role: "security_engineer".to_owned(),
            approvals_required: 2,
            requested_at: now,
            expires_at: now + time::Duration::minutes(5),
            round: 0,
        })
        .await
        .unwrap();
    assert!(matches!(
        vote(&s, &id, "alice", Some(&hash)).await,
        Decided::Counted { .. }
    ));
    let why = refused(
        &s.invoke(&id, &instance_id, Mode::Enforce).await,
        "NotApproved",
    );
    assert!(why.contains("nobody approved it"), "{why}");
    // A request naming another instance than the incident's.
    let (other, _) = instance(s.ec2(), &["/dev/xvda"]).await;
    let why = refused(&s.invoke(&id, &other, Mode::Enforce).await, "NotApproved");
    assert!(why.contains(&other), "{why}");
    assert_eq!(state(s.ec2(), &other).await, "running");

    // A recorded plan and a config that both leave the gate out (the planner and config
    // validation never do): the registry gates the step all the same.
    let ungated_plan = incident_with(&s, &other, |d| {
        for step in d.playbook.steps.iter_mut().filter(|p| p.id == STEP) {
            step.requires_approval = false;
            step.approvals_required = 0;
        }
    })
    .await;
    let mut ungated_config = s.config.clone();
    for step in ungated_config
        .playbooks
        .iter_mut()
        .flat_map(|p| p.steps.iter_mut())
        .filter(|p| p.id == STEP)
    {
        step.requires_approval = false;
    }
    let member = ir_aws::member::MemberAccess::new(
        ungated_config.accounts.clone(),
        ir_tests::ACCOUNT_ID,
        ir_tests::REGION,
    );
    let guard = ir_actions::guard::Guard::new(
        s.stores.names.clone(),
        ungated_config,
        member,
        ir_actions::ec2::TERMINATE_ACTION,
    );
    let e = guard
        .authorize(
            s.clients(),
            &step_request(&ungated_plan, STEP, &other),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ir_core::ErrorName::NotApproved, "{e}");
    assert!(e.to_string().contains("none was requested"), "{e}");
    assert_eq!(state(s.ec2(), &other).await, "running");

    untouched(&s, &instance_id).await;
    let refusals: Vec<Value> = s
        .audit_actions(&id)
        .await
        .into_iter()
        .filter(|(a, d)| a == "step-not-approved" && d["step"] == STEP)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(refusals.iter().all(|d| d["error"] == "NotApproved"));
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let s = setup().await;
    let (instance_id, volumes) = instance(s.ec2(), &["/dev/xvda", "/dev/xvdb"]).await;
    let id = incident(&s, &instance_id).await;
    isolate(&s, &id, &instance_id).await;
    let taken = snapshot(&s, &id, &instance_id).await;
    let chain = s.audit_actions(&id).await.len();

    let plan = report(&s.invoke(&id, &instance_id, Mode::DryRun).await);
    assert_eq!(plan.mode, Mode::DryRun);
    assert_eq!(plan.outcome, Outcome::Planned);
    assert!(plan.record.is_none());
    let changes: Vec<(&str, &str, &Value, &Value, ChangeStatus)> = plan
        .changes
        .iter()
        .map(|c| {
            (
                c.target.as_str(),
                c.attribute.as_str(),
                &c.before,
                &c.after,
                c.status,
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                instance_id.as_str(),
                "disable-api-termination",
                &json!(true),
                &json!(false),
                ChangeStatus::Planned
            ),
            (
                instance_id.as_str(),
                "instance-state",
                &json!("running"),
                &json!("terminated"),
                ChangeStatus::Planned
            ),
        ]
    );
    // Which snapshot backs which volume, and what becomes of the volumes (isolation kept them).
    for (volume, snapshot) in &taken {
        assert!(
            plan.notes.iter().any(|n| n.starts_with(volume.as_str())
                && n.contains(&format!("backed by snapshot {snapshot}"))
                && n.contains("kept, detached")),
            "{volume} {snapshot}: {:#?}",
            plan.notes
        );
    }
    assert_eq!(taken.len(), volumes.len());
    // The plan is the same each time: what an approver approves is what is enforced.
    let again = report(&s.invoke(&id, &instance_id, Mode::DryRun).await);
    assert_eq!(plan_hash(&again.changes), plan_hash(&plan.changes));

    untouched(&s, &instance_id).await;
    assert_eq!(
        s.audit_actions(&id).await.len(),
        chain,
        "a dry-run writes nothing"
    );
}

#[tokio::test]
async fn terminated_once_every_volume_has_a_completed_snapshot_and_the_step_is_approved() {
    let s = setup().await;
    let (instance_id, volumes) = instance(s.ec2(), &["/dev/xvda", "/dev/xvdb"]).await;
    let id = incident(&s, &instance_id).await;
    isolate(&s, &id, &instance_id).await;
    let taken = snapshot(&s, &id, &instance_id).await;
    assert_eq!(taken.len(), 2);

    // The gate: the plan, approved by two engineers with its hash.
    let plan = report(&s.invoke(&id, &instance_id, Mode::DryRun).await);
    approve(&s, &id, Some(&plan)).await;
    let done = report(&s.invoke(&id, &instance_id, Mode::Enforce).await);
    assert_eq!(done.mode, Mode::Enforce);
    assert_eq!(done.outcome, Outcome::Applied);
    let lifted = &done.changes[0];
    assert_eq!(
        (
            lifted.target.as_str(),
            lifted.attribute.as_str(),
            &lifted.before,
            &lifted.after,
            lifted.status
        ),
        (
            instance_id.as_str(),
            "disable-api-termination",
            &json!(true),
            &json!(false),
            ChangeStatus::Applied
        )
    );
    let ended = &done.changes[1];
    assert_eq!(ended.attribute, "instance-state");
    assert_eq!(ended.before, json!("running"));
    assert!(
        ended.after == json!("shutting-down") || ended.after == json!("terminated"),
        "{ended:?}"
    );
    assert_eq!(ended.status, ChangeStatus::Applied);
    let Some(ContainmentRecord::Termination(record)) = &done.record else {
        panic!("no termination record: {:?}", done.record);
    };
    assert_eq!(record.instance_id, instance_id);
    assert!(record.protection_lifted);
    let mut backed: Vec<(String, String)> = record
        .snapshots
        .iter()
        .map(|r| (r.volume_id.clone(), r.snapshot_id.clone()))
        .collect();
    backed.sort();
    let mut expected = taken.clone();
    expected.sort();
    assert_eq!(backed, expected);

    // EC2: terminating or terminated, its protection off; the volumes (kept by isolation) and
    // the snapshots are still there.
    let now = state(s.ec2(), &instance_id).await;
    assert!(now == "shutting-down" || now == "terminated", "{now}");
    assert!(!protection(s.ec2(), &instance_id).await);
    let kept = s
        .ec2()
        .describe_volumes()
        .set_volume_ids(Some(volumes.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.volumes().len(), 2);
    let snapshots = s
        .ec2()
        .describe_snapshots()
        .set_snapshot_ids(Some(taken.iter().map(|(_, s)| s.clone()).collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(snapshots.snapshots().len(), 2);

    // A second run finds nothing to terminate.
    let again = s.invoke(&id, &instance_id, Mode::Enforce).await;
    assert!(refused(&again, "NotFound").contains(&instance_id));

    // Recorded as the playbook records it: both changes in the audit chain, the record on the
    // incident, which is contained when the playbook finishes.
    s.record_step(&id, &done).await;
    let chain = s.audit_actions(&id).await;
    let (_, detail) = chain
        .iter()
        .find(|(a, _)| a == &format!("action:{BINARY}"))
        .expect("the termination in the chain");
    assert_eq!(
        detail["changes"],
        serde_json::to_value(&done.changes).unwrap()
    );
    assert_eq!(detail["record"], true);
    s.recorder()
        .record(RecordRequest::PlaybookFinished {
            incident_id: id.clone(),
            playbook_id: PLAYBOOK.to_owned(),
            execution_name: None,
        })
        .await
        .unwrap();
    let stored = IncidentStore::new(s.clients().clone(), s.stores.names.clone())
        .get(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.summary.status, Status::Contained);
    assert!(stored.records.contains(done.record.as_ref().unwrap()));

    // `ir release` restores nothing of it (its isolation included) and says the suite ended it.
    let lead = "arn:aws:sts::123456789012:assumed-role/SecurityLead/carol";
    let policy = ir_tests::fixtures::lead_policy(&["arn:aws:iam::123456789012:role/SecurityLead"]);
    let settings = RecorderSettings {
        evidence_bucket: s.stores.bucket.clone(),
        evidence: EvidenceConfig {
            retention_days: 1,
            ..EvidenceConfig::default()
        },
        slots: ir_incident::recorder::SlotSettings::default(),
    };
    let released = ir_incident::release::release_incident(
        s.clients(),
        &s.stores.names,
        settings,
        &policy,
        &ir_incident::release::IncidentRelease {
            incident_id: id.clone(),
            mode: Mode::Enforce,
            reason: Some("terminated and rebuilt".to_owned()),
            force: false,
        },
        lead,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(released.report.changes.is_empty(), "{:#?}", released.report);
    let notes = released.report.notes.join("\n");
    assert!(
        notes.contains(&format!(
            "instance {instance_id} was terminated by the suite"
        )) && notes.contains("cannot be undone")
            && taken.iter().all(|(_, snap)| notes.contains(snap.as_str())),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("{instance_id}: its isolation is not restored")),
        "{notes}"
    );
    assert_eq!(released.status, Status::Resolved);
}
