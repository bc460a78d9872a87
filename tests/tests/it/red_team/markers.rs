//! Markers an attacker can write: tags on the victim instance, a tag or an IAM path on a role.
//! None of them is trusted: isolation takes its originals and its holder from the keys table,
//! the suite's own roles are protected by exact ARN only, and a dry-run incident's audit chain
//! is anchored when its playbook finishes, so it cannot be rewritten whole.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ec2::types::Tag;
use ir_actions::ec2::{TAG_INCIDENT, TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS};
use ir_actions::iam::{deny_principal, revoke_sessions};
use ir_aws::store::{AuditLog, IncidentStore};
use ir_core::ErrorName;
use ir_core::action::{ContainmentRecord, Outcome};
use ir_core::config::{Mode, Protection};
use ir_core::orchestration::RecordRequest;
use ir_incident::recorder::{RecordOutput, Recorder, RecorderSettings};
use ir_tests::fixtures::{
    create_role, create_security_group, create_subnet, create_vpc, eni_state, launch,
    primary_interface, run_instance,
};
use ir_tests::{
    ACCOUNT_ID, cloud, containment_request, expect_err, holds, incident_id, instance_resource,
    isolate, recorded_clients, role_resource, unique_name,
};

use crate::orchestration::{evidence, isolation_report, recorded, triaged};

#[tokio::test]
async fn forged_isolation_tags_neither_block_isolation_nor_supply_the_originals() {
    let cloud = cloud().await;
    let (clients, _) = recorded_clients(cloud);
    let ec2 = clients.ec2();
    let vpc = create_vpc(ec2, "10.71.0.0/16").await;
    let subnet = create_subnet(ec2, &vpc, "10.71.1.0/24").await;
    let real = vec![create_security_group(ec2, &vpc, &unique_name("rt-app"), "application").await];
    let attacker = create_security_group(ec2, &vpc, &unique_name("rt-open"), "all open").await;
    let instance =
        launch(run_instance(ec2).network_interfaces(primary_interface(&subnet, &real))).await;
    let instance_id = instance.instance_id().unwrap().to_owned();
    let eni = instance.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_owned();

    // The intruder, root on the host with the instance role's ec2:CreateTags, marks the
    // instance as contained by a made-up incident and plants "originals" of its choosing.
    let made_up = incident_id();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(&instance_id)
        .resources(&eni)
        .tags(tag(TAG_INCIDENT, &made_up))
        .tags(tag(TAG_ORIGINAL_GROUPS, &attacker))
        .tags(tag(
            TAG_ORIGINAL_ATTRIBUTES,
            "term=0 stop=0 shutdown=terminate",
        ))
        .send()
        .await
        .unwrap();

    // Isolated normally, under the real incident.
    let inc = incident_id();
    let req = containment_request(
        &inc,
        "isolate",
        instance_resource(&instance_id),
        Mode::Enforce,
    );
    let report = isolate(&clients, &req).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    let Some(ContainmentRecord::Isolation(record)) = &report.record else {
        panic!("an isolation record: {report:#?}");
    };
    // The originals are the real ones, not the planted ones.
    assert_eq!(record.interfaces.len(), 1);
    assert_eq!(record.interfaces[0].original_group_ids, real);
    assert_eq!(record.original_attributes.shutdown_behavior, "stop");
    let (groups, tags) = eni_state(ec2, &eni).await;
    assert_eq!(groups, vec![record.isolation_group_id.clone()]);
    assert_eq!(
        tags.get(TAG_INCIDENT),
        Some(&inc),
        "the forged tag is overwritten"
    );
    assert_eq!(tags.get(TAG_ORIGINAL_GROUPS), Some(&real[0]));

    // The truth is the incident's hold in the keys table.
    let key = format!("isolation#{ACCOUNT_ID}:{}:{instance_id}", ir_tests::REGION);
    assert_eq!(record.hold_key.as_deref(), Some(key.as_str()));
    let hold = holds().await.get(&key).await.unwrap().expect("the hold");
    assert_eq!(hold.incident_id, inc);
    assert_eq!(hold.interfaces, record.interfaces);

    // A retry of the same incident reads its own hold back; another incident is refused on it
    // (not on tags), and the made-up incident's name appears nowhere.
    let again = isolate(&clients, &req).await.unwrap();
    assert_eq!(again.record, report.record);
    let other = containment_request(
        &incident_id(),
        "isolate",
        instance_resource(&instance_id),
        Mode::DryRun,
    );
    let err = expect_err(isolate(&clients, &other).await, ErrorName::Conflict);
    assert!(
        err.to_string().contains(&inc) && !err.to_string().contains(&made_up),
        "{err}"
    );
}

#[tokio::test]
async fn a_role_tagged_or_pathed_like_the_suite_is_contained_and_only_the_exact_arn_is_protected() {
    let cloud = cloud().await;
    let (clients, _) = recorded_clients(cloud);
    let iam = aws_sdk_iam::Client::new(&cloud.sdk_config());
    let tagged = unique_name("rt-tagged");
    create_role(&iam, &tagged, "/", &[("ir:suite", "true")]).await;
    let pathed = unique_name("rt-pathed");
    create_role(&iam, &pathed, "/ir-suite/", &[]).await;
    let suite = unique_name("rt-suite");
    let suite_arn = create_role(&iam, &suite, "/ir-suite/", &[("ir:suite", "true")]).await;
    let protection = Protection {
        principals: Vec::new(),
        suite_principals: vec![suite_arn],
    };
    let deny_policy = ir_tests::fixtures::create_deny_policy(&iam).await;

    for name in [&tagged, &pathed] {
        let inc = incident_id();
        let req = containment_request(&inc, "contain", role_resource(name), Mode::Enforce);
        let denied = deny_principal(&clients, &protection, &deny_policy, &req)
            .await
            .unwrap();
        assert_eq!(denied.outcome, Outcome::Applied, "{name}: {denied:#?}");
        let revoked = revoke_sessions(&clients, &protection, &req).await.unwrap();
        assert_eq!(revoked.outcome, Outcome::Applied, "{name}: {revoked:#?}");
        // Contained: the revoking inline policy and the managed deny-all.
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(inline.policy_names().len(), 1, "{name}: {inline:?}");
        let attached = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        assert!(
            attached
                .attached_policies()
                .iter()
                .any(|p| p.policy_arn() == Some(deny_policy.as_str())),
            "{name}: {attached:?}"
        );
    }

    let req = containment_request(
        &incident_id(),
        "contain",
        role_resource(&suite),
        Mode::Enforce,
    );
    expect_err(
        deny_principal(&clients, &protection, &deny_policy, &req).await,
        ErrorName::Protected,
    );
    expect_err(
        revoke_sessions(&clients, &protection, &req).await,
        ErrorName::Protected,
    );
    let policies = iam
        .list_role_policies()
        .role_name(&suite)
        .send()
        .await
        .unwrap();
    assert!(policies.policy_names().is_empty(), "{policies:?}");
    let attached = iam
        .list_attached_role_policies()
        .role_name(&suite)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty(), "{attached:?}");
}

#[tokio::test]
async fn a_dry_run_incident_chain_is_anchored_when_its_playbook_finishes() {
    let stores = ir_tests::stores("rt-anchor").await;
    let (input, decision) = triaged(Mode::DryRun);
    let id = input.incident_id.clone();
    IncidentStore::new(stores.clients.clone(), stores.names.clone())
        .ingest(&input.events[0], input.detected_at)
        .await
        .unwrap();
    let recorder = Recorder::new(
        stores.clients.clone(),
        stores.names.clone(),
        RecorderSettings {
            evidence_bucket: stores.bucket.clone(),
            evidence: evidence(),
            slots: ir_incident::recorder::SlotSettings::default(),
        },
    );
    let out = recorder
        .record(RecordRequest::Triaged {
            incident_id: id.clone(),
            events: input.events.clone(),
            decision,
            detected_at: input.detected_at,
            revision: 0,
        })
        .await
        .unwrap();
    assert!(matches!(out, RecordOutput::Playbook(_)));
    recorder
        .record(RecordRequest::StepResult {
            incident_id: id.clone(),
            step_id: "isolate-instance".into(),
            report: isolation_report(&id, Mode::DryRun),
        })
        .await
        .unwrap();
    let done = recorded(
        recorder
            .record(RecordRequest::PlaybookFinished {
                incident_id: id.clone(),
                playbook_id: "immediate-isolation".into(),
                execution_name: None,
            })
            .await
            .unwrap(),
    );

    // Anchored at the playbook-finished record: nothing after the last anchor.
    let anchor = done.anchor.expect("the dry-run's chain anchored");
    assert_eq!((anchor.seq, &anchor.hash), (done.seq, &done.hash));
    let log = AuditLog::new(stores.clients.clone(), stores.names.clone());
    let verified = log.verify(&id, &stores.bucket).await.unwrap();
    assert_eq!(verified.head, done.hash);
    assert_eq!((verified.unanchored, verified.unanchored_from), (0, None));
    assert!(verified.anchors_checked >= 2, "{verified:?}");
}
