//! Every sample in `events/` through the whole core: normalize, correlate, enrich, score, route.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;
use std::path::PathBuf;

use ir_core::correlate::{Correlation, incident_id, is_incident_id};
use ir_core::event::{Resource, SkipCode};
use ir_core::{Engine, IngestOutput, ResourceKind, Severity, Source, normalize};
use time::OffsetDateTime;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn load(name: &str) -> Vec<u8> {
    let p = events_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What a sample must produce: the events (source, kind, id, finding severity), the skip codes,
/// and the incident severity and playbook under the embedded configuration with no history.
struct Expect {
    file: &'static str,
    events: &'static [(Source, ResourceKind, &'static str, Severity)],
    skipped: &'static [SkipCode],
    incidents: &'static [(Severity, &'static str)],
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "guardduty-cryptocurrency-bitcointool-dns.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60001",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-cryptocurrency-bitcointool-dns-repeat.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60001",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-backdoor-cc-activity.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60001",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-ssh-bruteforce.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60002",
            Severity::Low,
        )],
        skipped: &[],
        // Low finding, low-criticality staging asset, but the source is in a listed /24: medium.
        incidents: &[(Severity::Medium, "queue-for-review")],
    },
    Expect {
        // The SSH brute force again, as a GuardDuty delegated administrator (444455556666)
        // receives it: the ARN names the administrator's account and detector.
        file: "guardduty-delegated-admin-ssh-bruteforce.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60002",
            Severity::Low,
        )],
        skipped: &[],
        incidents: &[(Severity::Medium, "queue-for-review")],
    },
    Expect {
        file: "guardduty-partial-eni-no-action.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60002",
            Severity::Medium,
        )],
        skipped: &[],
        incidents: &[(Severity::Medium, "queue-for-review")],
    },
    Expect {
        // An attack sequence (Extended Threat Detection): one event on its most containable
        // resource, the instance; the user's key and the bucket are related resources.
        file: "guardduty-attack-sequence-iam-compromised-credentials.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60001",
            Severity::Critical,
        )],
        skipped: &[],
        incidents: &[(Severity::Critical, "immediate-isolation")],
    },
    Expect {
        // One of the sequence's signal findings, delivered on its own.
        file: "guardduty-tor-ip-caller-sequence-signal.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::IamUser,
            "ci-deployer",
            Severity::Medium,
        )],
        skipped: &[],
        incidents: &[(Severity::Medium, "queue-for-review")],
    },
    Expect {
        file: "guardduty-resource-without-details.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Other,
            "finding/c3d5e7f9a1b2c4d6e8f0a2b4c6d8e0f2",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "securityhub-ocsf-guardduty-bitcoin.json",
        events: &[],
        skipped: &[SkipCode::GuarddutyDuplicate],
        incidents: &[],
    },
    Expect {
        file: "guardduty-instance-credential-exfiltration.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::IamRole,
            "web-prod-instance-role",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-recon-malicious-ip-caller.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::IamUser,
            "ci-deployer",
            Severity::Medium,
        )],
        skipped: &[],
        // Medium finding raised to high by a high-criticality principal and a listed caller.
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-s3-exfiltration.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::S3Bucket,
            "acme-customer-exports",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "guardduty-portprobe-low.json",
        events: &[(
            Source::Guardduty,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60002",
            Severity::Low,
        )],
        skipped: &[],
        incidents: &[(Severity::Medium, "queue-for-review")],
    },
    Expect {
        file: "securityhub-inspector-cve.json",
        events: &[(
            Source::Securityhub,
            ResourceKind::Ec2Instance,
            "i-0a1b2c3d4e5f60001",
            Severity::High,
        )],
        skipped: &[],
        incidents: &[(Severity::High, "investigate-and-notify")],
    },
    Expect {
        file: "securityhub-fsbp-control-failure.json",
        events: &[
            (
                Source::Securityhub,
                ResourceKind::S3Bucket,
                "acme-customer-exports",
                Severity::Medium,
            ),
            (
                Source::Securityhub,
                ResourceKind::Other,
                "arn:aws:ec2:us-east-1:111122223333:security-group/sg-0a1b2c3d4e5f60302",
                Severity::Critical,
            ),
        ],
        skipped: &[],
        // S3.8: 0.4 x 0.4 + critical bucket 0.3 x 1.0 = 0.46, medium. EC2.19 is critical on its own.
        incidents: &[
            (Severity::Medium, "queue-for-review"),
            (Severity::Critical, "immediate-isolation"),
        ],
    },
    Expect {
        file: "securityhub-guardduty-duplicate.json",
        events: &[],
        skipped: &[SkipCode::GuarddutyDuplicate],
        incidents: &[],
    },
    Expect {
        file: "securityhub-workflow-notified.json",
        events: &[],
        skipped: &[SkipCode::WorkflowNotNew, SkipCode::RecordNotActive],
        incidents: &[],
    },
];

#[test]
fn every_sample_is_covered_by_the_table() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let in_table: BTreeSet<String> = EXPECTED.iter().map(|e| e.file.to_owned()).collect();
    assert_eq!(on_disk, in_table);
    assert!(on_disk.len() >= 10);
}

#[test]
fn every_sample_normalizes_and_triages_as_expected() {
    let engine = Engine::embedded().unwrap();
    for x in EXPECTED {
        let n = normalize(&load(x.file)).unwrap_or_else(|e| panic!("{}: {e}", x.file));
        let got: Vec<_> = n
            .events
            .iter()
            .map(|e| {
                (
                    e.source,
                    e.resource.kind(),
                    e.resource.id().to_owned(),
                    e.severity.label,
                )
            })
            .collect();
        let want: Vec<_> = x
            .events
            .iter()
            .map(|(s, k, id, sev)| (*s, *k, (*id).to_owned(), *sev))
            .collect();
        assert_eq!(got, want, "{}: events", x.file);
        let codes: Vec<SkipCode> = n.skipped.iter().map(|s| s.code).collect();
        assert_eq!(codes, x.skipped, "{}: skipped", x.file);
        for e in &n.events {
            assert_eq!(e.raw.get(), e.raw.get().trim(), "{}", x.file);
            assert!(
                !e.finding_type.is_empty()
                    && !e.title.is_empty()
                    && e.account == "111122223333"
                    && e.region == "us-east-1"
            );
            assert!(
                e.first_seen.is_some() && e.last_seen.is_some(),
                "{}: times",
                x.file
            );
        }
        let ingest = IngestOutput::from_normalized(n, OffsetDateTime::UNIX_EPOCH);
        let got: Vec<_> = ingest
            .incidents
            .iter()
            .map(|i| {
                let en = engine.enrich(&i.events, 0);
                let d = engine
                    .decide(&i.incident_id, &i.events, &en, i.detected_at)
                    .unwrap();
                assert!(is_incident_id(&d.incident_id));
                assert!((0.0..=1.0).contains(&d.score.score));
                (d.severity, d.playbook.id)
            })
            .collect();
        let want: Vec<_> = x
            .incidents
            .iter()
            .map(|(s, p)| (*s, (*p).to_owned()))
            .collect();
        assert_eq!(got, want, "{}: incidents", x.file);
    }
}

#[test]
fn the_raw_finding_is_kept_verbatim() {
    let text = String::from_utf8(load("guardduty-backdoor-cc-activity.json")).unwrap();
    let n = normalize(text.as_bytes()).unwrap();
    let detail: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["detail"].clone();
    let raw: serde_json::Value = serde_json::from_str(n.events[0].raw.get()).unwrap();
    assert_eq!(raw, detail);
    // Unknown fields survive in the raw copy.
    assert!(raw["service"].get("featureName").is_some());
}

#[test]
fn untidy_fields_are_accepted() {
    // Integer severity 8 and float 8.0; asn as string and number; launchTime as ISO and epoch ms.
    let int = normalize(&load("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
    let float = normalize(&load("guardduty-backdoor-cc-activity.json")).unwrap();
    assert_eq!(int.events[0].severity.value, Some(8.0));
    assert_eq!(float.events[0].severity.value, Some(8.0));
    let Resource::Ec2Instance(a) = &int.events[0].resource else {
        panic!()
    };
    let Resource::Ec2Instance(b) = &float.events[0].resource else {
        panic!()
    };
    assert!(a.launch_time.is_some() && b.launch_time.is_some());
    assert_eq!(float.events[0].indicators[0].asn.as_deref(), Some("64500"));
    let numeric_asn = normalize(&load("guardduty-ssh-bruteforce.json")).unwrap();
    assert_eq!(
        numeric_asn.events[0].indicators[0].asn.as_deref(),
        Some("64501")
    );
    let sample = normalize(&load("guardduty-portprobe-low.json")).unwrap();
    assert!(sample.events[0].sample);
    assert!(!int.events[0].sample);
}

#[test]
fn the_victim_instance_is_described_in_full() {
    let n = normalize(&load("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
    let Resource::Ec2Instance(i) = &n.events[0].resource else {
        panic!("not an instance")
    };
    assert_eq!(i.network_interfaces.len(), 2);
    assert_eq!(i.vpc_id.as_deref(), Some("vpc-0a1b2c3d4e5f60100"));
    let groups: Vec<&str> = i.network_interfaces[0]
        .security_groups
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(groups, ["sg-0a1b2c3d4e5f60301", "sg-0a1b2c3d4e5f60302"]);
    assert_eq!(
        i.network_interfaces[0].ipv6_addresses,
        ["2600:1f18:abcd:1200::15"]
    );
    assert!(
        i.instance_profile_arn
            .as_deref()
            .unwrap()
            .ends_with("instance-profile/web-prod-instance-profile")
    );
    assert_eq!(
        n.events[0]
            .resource_tags
            .get("criticality")
            .map(String::as_str),
        Some("high")
    );
}

#[test]
fn repeats_and_hub_copies_land_on_one_incident() {
    let first = normalize(&load("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
    let repeat = normalize(&load(
        "guardduty-cryptocurrency-bitcointool-dns-repeat.json",
    ))
    .unwrap();
    let hub = normalize(&load("securityhub-guardduty-duplicate.json")).unwrap();
    let (a, b) = (&first.events[0], &repeat.events[0]);
    assert_eq!(a.finding_key, b.finding_key);
    assert!(b.count > a.count, "the repeat carries a larger count");
    let id = incident_id(&a.finding_key);
    assert_eq!(hub.skipped[0].incident_id.as_deref(), Some(id.as_str()));
    // With the store knowing the finding, the repeat is an update of the same incident.
    assert_eq!(
        ir_core::correlate::correlate(b, Some(&id), None),
        Correlation::Repeat {
            incident_id: id.clone()
        }
    );
    // Another finding on the same resource while the incident is open attaches to it.
    let other = normalize(&load("guardduty-backdoor-cc-activity.json")).unwrap();
    assert_eq!(
        ir_core::correlate::correlate(&other.events[0], None, Some(&id)),
        Correlation::Attach {
            incident_id: id.clone()
        }
    );
    assert_ne!(incident_id(&other.events[0].finding_key), id);
}

#[test]
fn a_batch_groups_by_resource_and_raises_severity() {
    // Two findings on one resource in one batch: one incident, the higher severity wins.
    let text = String::from_utf8(load("securityhub-inspector-cve.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut second = v["detail"]["findings"][0].clone();
    second["Id"] = serde_json::json!("arn:aws:inspector2:us-east-1:111122223333:finding/second");
    second["Severity"] = serde_json::json!({"Label": "CRITICAL", "Normalized": 95});
    v["detail"]["findings"].as_array_mut().unwrap().push(second);
    let n = normalize(v.to_string().as_bytes()).unwrap();
    let ingest = IngestOutput::from_normalized(n, OffsetDateTime::UNIX_EPOCH);
    assert_eq!(ingest.incidents.len(), 1);
    let i = &ingest.incidents[0];
    assert_eq!(i.events.len(), 2);
    assert!(matches!(i.correlations[1], Correlation::Attach { .. }));
    let engine = Engine::embedded().unwrap();
    let d = engine
        .decide(
            &i.incident_id,
            &i.events,
            &engine.enrich(&i.events, 0),
            i.detected_at,
        )
        .unwrap();
    assert_eq!(d.severity, Severity::Critical);
}

#[test]
fn unknown_assets_get_the_documented_defaults() {
    let text = String::from_utf8(load("guardduty-ssh-bruteforce.json"))
        .unwrap()
        .replace("i-0a1b2c3d4e5f60002", "i-0fffffffffffffff9");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["detail"]["resource"]["instanceDetails"]["tags"] = serde_json::json!([]);
    let n = normalize(v.to_string().as_bytes()).unwrap();
    let engine = Engine::embedded().unwrap();
    let en = engine.enrich(&n.events, 0);
    assert_eq!(en.owner.value, "unassigned");
    assert_eq!(en.environment.value, "unknown");
    assert_eq!(en.criticality.value, Severity::Medium);
    assert_eq!(en.data_classification.value, "unclassified");
    assert!(en.notes.iter().any(|n| n.contains("unknown")));
}

#[test]
fn sample_findings_never_enforce() {
    let yaml = ir_core::config::DEFAULT_CONFIG_YAML.replacen(
        "    trigger: severity <= medium\n",
        "    trigger: severity <= medium\n    mode: enforce\n",
        1,
    );
    let config = ir_core::Config::from_yaml(&yaml).unwrap();
    let e = Engine::embedded().unwrap();
    let engine = Engine::new(config, e.registry, e.intel);
    let n = normalize(&load("guardduty-portprobe-low.json")).unwrap();
    let d = engine
        .decide(
            "inc-00000000000000000000",
            &n.events,
            &engine.enrich(&n.events, 0),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
    assert!(d.samples_only);
    assert_eq!(d.playbook.mode, ir_core::config::Mode::DryRun);
    let real = normalize(&load("guardduty-ssh-bruteforce.json")).unwrap();
    let d = engine
        .decide(
            "inc-00000000000000000000",
            &real.events,
            &engine.enrich(&real.events, 0),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
    assert_eq!(d.playbook.mode, ir_core::config::Mode::Enforce);
}

#[test]
fn invalid_findings_name_the_field() {
    let gd = String::from_utf8(load("guardduty-ssh-bruteforce.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&gd).unwrap();
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "detail.id",
            Box::new(|v| {
                v["detail"].as_object_mut().unwrap().remove("id");
            }),
        ),
        (
            "detail.severity",
            Box::new(|v| v["detail"]["severity"] = serde_json::json!(11)),
        ),
        (
            "detail.severity",
            Box::new(|v| v["detail"]["severity"] = serde_json::json!("high")),
        ),
        (
            "detail.severity",
            Box::new(|v| {
                v["detail"].as_object_mut().unwrap().remove("severity");
            }),
        ),
        (
            "detail.service.count",
            Box::new(|v| v["detail"]["service"]["count"] = serde_json::json!(-2)),
        ),
    ];
    for (want, mutate) in cases {
        let mut m = v.clone();
        mutate(&mut m);
        let e = normalize(m.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with(want), "want {want}, got {e}");
    }
    let hub = String::from_utf8(load("securityhub-inspector-cve.json")).unwrap();
    v = serde_json::from_str(&hub).unwrap();
    v["detail"]["findings"][0]["Severity"] = serde_json::json!({"Label": "SEVERE"});
    let e = normalize(v.to_string().as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("detail.findings[0].Severity.Label"),
        "{e}"
    );
    v["detail"]["findings"][0]["Severity"] = serde_json::json!({});
    assert!(normalize(v.to_string().as_bytes()).is_err());
}

#[test]
fn a_delegated_administrators_copy_is_triaged_in_the_resources_account_and_noted() {
    let n = normalize(&load("guardduty-delegated-admin-ssh-bruteforce.json")).unwrap();
    let e = &n.events[0];
    assert_eq!(e.account, "111122223333");
    assert_eq!(
        e.finding_key,
        "guardduty:111122223333:us-east-1:e7a1c3b5d9f2468ab0c1d2e3f4a5b6c7"
    );
    assert_eq!(
        e.resource_key(),
        "111122223333/ec2-instance/i-0a1b2c3d4e5f60002"
    );
    assert_eq!(e.notes.len(), 1, "{:?}", e.notes);
    assert!(
        e.notes[0].contains("444455556666")
            && e.notes[0].contains("9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
        "{:?}",
        e.notes
    );
    // The note travels with the event to triage.
    let wire = serde_json::to_value(e).unwrap();
    assert_eq!(wire["notes"][0], e.notes[0].as_str());
    // A matching ARN carries no note.
    let direct = normalize(&load("guardduty-ssh-bruteforce.json")).unwrap();
    assert!(direct.events[0].notes.is_empty());
    assert!(
        serde_json::to_value(&direct.events[0])
            .unwrap()
            .get("notes")
            .is_none()
    );
    // An ARN naming another finding is noted too, never a refusal.
    let text = String::from_utf8(load("guardduty-ssh-bruteforce.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["detail"]["arn"] = serde_json::json!("not-an-arn");
    let odd = normalize(v.to_string().as_bytes()).unwrap();
    assert!(odd.events[0].notes[0].contains("not-an-arn"));
}

/// The Security Hub copies (ASFF and OCSF) of a finding delivered to an administrator account.
fn hub_copies_as_administrator() -> (serde_json::Value, serde_json::Value) {
    let admin_arn = "arn:aws:guardduty:us-east-1:444455556666:detector/9f8e7d6c5b4a39281706f5e4d3c2b1a0/finding/d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1";
    let mut asff: serde_json::Value =
        serde_json::from_slice(&load("securityhub-guardduty-duplicate.json")).unwrap();
    asff["account"] = serde_json::json!("444455556666");
    asff["detail"]["findings"][0]["Id"] = serde_json::json!(admin_arn);
    let mut ocsf: serde_json::Value =
        serde_json::from_slice(&load("securityhub-ocsf-guardduty-bitcoin.json")).unwrap();
    ocsf["account"] = serde_json::json!("444455556666");
    ocsf["detail"]["findings"][0]["finding_info"]["uid"] = serde_json::json!(admin_arn);
    (asff, ocsf)
}

#[test]
fn direct_asff_and_ocsf_copies_of_one_guardduty_finding_make_one_incident() {
    let direct = normalize(&load("guardduty-cryptocurrency-bitcointool-dns.json")).unwrap();
    let asff = normalize(&load("securityhub-guardduty-duplicate.json")).unwrap();
    let ocsf = normalize(&load("securityhub-ocsf-guardduty-bitcoin.json")).unwrap();
    let id = incident_id(&direct.events[0].finding_key);
    for copy in [&asff, &ocsf] {
        assert!(copy.events.is_empty());
        assert_eq!(copy.skipped.len(), 1);
        assert_eq!(copy.skipped[0].code, SkipCode::GuarddutyDuplicate);
        assert_eq!(copy.skipped[0].incident_id.as_deref(), Some(id.as_str()));
    }
    assert!(ocsf.skipped[0].reason.contains("OCSF"));
    // Delivered to an administrator account, whose ARNs name its own account: the same incident.
    let (asff, ocsf) = hub_copies_as_administrator();
    for copy in [asff, ocsf] {
        let n = normalize(copy.to_string().as_bytes()).unwrap();
        assert_eq!(
            n.skipped[0].incident_id.as_deref(),
            Some(id.as_str()),
            "{copy}"
        );
    }
}

#[test]
fn ocsf_findings_of_other_products_become_events() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("securityhub-ocsf-guardduty-bitcoin.json")).unwrap();
    let f = &mut v["detail"]["findings"][0];
    f["metadata"]["product"] = serde_json::json!({
        "name": "Inspector",
        "uid": "arn:aws:securityhub:us-east-1::productv2/aws/inspector",
        "vendor_name": "AWS"
    });
    f["finding_info"]["uid"] =
        serde_json::json!("arn:aws:inspector2:us-east-1:111122223333:finding/0a1b2c3d4e5f");
    f["finding_info"]["types"] =
        serde_json::json!(["Software and Configuration Checks/Vulnerabilities/CVE"]);
    f["severity_id"] = serde_json::json!(5);
    f["evidences"] = serde_json::json!([{"dst_endpoint": {"ip": "198.51.100.23"}}, {"query": {"hostname": "XMR.pool.example.net"}}]);
    let n = normalize(v.to_string().as_bytes()).unwrap();
    assert!(n.skipped.is_empty());
    let e = &n.events[0];
    assert_eq!(e.source, Source::Securityhub);
    assert_eq!(e.product, "Inspector");
    assert_eq!(e.severity.label, Severity::Critical);
    assert_eq!(
        e.resource_key(),
        "111122223333/ec2-instance/i-0a1b2c3d4e5f60001"
    );
    assert_eq!(
        e.resource_tags.get("Name").map(String::as_str),
        Some("web-prod-1")
    );
    assert_eq!(e.first_seen.unwrap().unix_timestamp(), 1_795_144_365);
    assert_eq!(e.indicators[0].value, "198.51.100.23");
    assert!(
        e.indicators
            .iter()
            .any(|i| i.value == "xmr.pool.example.net")
    );
    assert!(
        e.finding_key.starts_with(
            "securityhub-ocsf:arn:aws:securityhub:us-east-1::productv2/aws/inspector|"
        )
    );
    // A closed or already handled finding is skipped with its reason; no severity refuses it.
    let mut closed = v.clone();
    closed["detail"]["findings"][0]["status_id"] = serde_json::json!(4);
    let c = normalize(closed.to_string().as_bytes()).unwrap();
    assert_eq!(c.skipped[0].code, SkipCode::WorkflowNotNew);
    let mut unrated = v.clone();
    let f = unrated["detail"]["findings"][0].as_object_mut().unwrap();
    f.remove("severity_id");
    f.remove("severity");
    let e = normalize(unrated.to_string().as_bytes()).unwrap_err();
    assert!(
        e.to_string().starts_with("detail.findings[0].severity_id"),
        "{e}"
    );
}

#[test]
fn optional_parts_of_a_finding_are_not_required() {
    // A network interface with only an address and a VPC, the other with no subnet or
    // groups, and no `service.action`: triaged with what is there.
    let n = normalize(&load("guardduty-partial-eni-no-action.json")).unwrap();
    let e = &n.events[0];
    let Resource::Ec2Instance(i) = &e.resource else {
        panic!("{:?}", e.resource)
    };
    assert_eq!(i.network_interfaces.len(), 1);
    let eni = &i.network_interfaces[0];
    assert_eq!(eni.network_interface_id, "eni-0a1b2c3d4e5f60021");
    assert!(eni.subnet_id.is_none() && eni.security_groups.is_empty() && eni.public_ipv4.is_none());
    assert_eq!(i.vpc_id.as_deref(), Some("vpc-0a1b2c3d4e5f60100"));
    assert!(e.indicators.is_empty());
    assert!(
        e.notes.iter().any(|n| n.contains("networkInterfaces[1]")),
        "{:?}",
        e.notes
    );
    // No resource details: kept under the finding's own id, never another finding's.
    let n = normalize(&load("guardduty-resource-without-details.json")).unwrap();
    let e = &n.events[0];
    assert_eq!(
        e.resource_key(),
        "111122223333/other/finding/c3d5e7f9a1b2c4d6e8f0a2b4c6d8e0f2"
    );
    assert_eq!(e.indicators[0].value, "198.51.100.77");
    assert!(e.notes[0].contains("no identifier"), "{:?}", e.notes);
    // Access key details with no user name, S3 and EKS resources with no details.
    let text = String::from_utf8(load("guardduty-recon-malicious-ip-caller.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["detail"]["resource"]["accessKeyDetails"]
        .as_object_mut()
        .unwrap()
        .remove("userName");
    let n = normalize(v.to_string().as_bytes()).unwrap();
    assert_eq!(n.events[0].resource.id(), "AKIAEXAMPLEKEY000001");
    for rtype in ["S3Bucket", "EKSCluster", "AccessKey", "Lambda"] {
        v["detail"]["resource"] = serde_json::json!({ "resourceType": rtype });
        let n = normalize(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{rtype}: {e}"));
        assert_eq!(n.events[0].resource.kind(), ResourceKind::Other, "{rtype}");
        assert!(n.events[0].resource.id().starts_with("finding/"), "{rtype}");
    }
}
