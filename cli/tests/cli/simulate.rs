//! `ir simulate` as a newcomer runs it: the real binary, real files, exit codes and stdout.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ir"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn scratch(name: &str, content: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("simulate");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object: {e}"))
}

#[test]
fn every_sample_simulates_with_exit_0_in_both_formats() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("events")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let p = path.to_str().unwrap();
        let text = ir(&["simulate", p]);
        assert!(
            text.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&text.stderr)
        );
        assert!(
            String::from_utf8_lossy(&text.stdout).starts_with("DRY RUN"),
            "{p}"
        );
        let v = json(&ir(&["simulate", p, "--json"]));
        assert_eq!(v["dry_run"], true, "{p}");
        assert!(v["events"].is_array() && v["skipped"].is_array(), "{p}");
        n += 1;
    }
    assert!(n >= 10, "only {n} samples");
}

#[test]
fn json_has_the_documented_shape() {
    let v = json(&ir(&[
        "simulate",
        "events/guardduty-cryptocurrency-bitcointool-dns.json",
        "--json",
        "--history",
        "2",
    ]));
    let id = v["incident_id"].as_str().unwrap();
    assert!(id.starts_with("inc-") && id.len() == 24, "{id}");
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["playbook"], "immediate-isolation");
    let score = v["score"].as_f64().unwrap();
    assert!((score - 0.8).abs() < 1e-9, "{score}");
    for k in [
        "severity",
        "asset_criticality",
        "historical_frequency",
        "threat_score",
    ] {
        assert!(v["score_breakdown"]["components"][k].is_number(), "{k}");
        assert!(v["score_breakdown"]["weights"][k].is_number(), "{k}");
    }
    let steps = v["steps"].as_array().unwrap();
    let gated: Vec<&str> = steps
        .iter()
        .filter(|s| s["requires_approval"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(gated, ["revoke-credentials", "isolate-instance"]);
    assert!(steps.iter().all(|s| s["action"].is_string()));
    let e = &v["events"][0];
    assert_eq!(e["finding_id"], "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1");
    assert_eq!(e["source"], "guardduty");
    assert_eq!(e["finding_type"], "CryptoCurrency:EC2/BitcoinTool.B!DNS");
    assert_eq!(e["severity"], "high");
    assert_eq!(
        e["resource"],
        serde_json::json!({"type": "ec2-instance", "id": "i-0a1b2c3d4e5f60001"})
    );
    assert_eq!(e["account"], "111122223333");
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(v["skipped"], serde_json::json!([]));
}

#[test]
fn resource_ids_are_what_an_operator_knows() {
    for (file, kind, id) in [
        (
            "guardduty-recon-malicious-ip-caller.json",
            "iam-user",
            "ci-deployer",
        ),
        (
            "guardduty-instance-credential-exfiltration.json",
            "iam-role",
            "web-prod-instance-role",
        ),
        (
            "guardduty-s3-exfiltration.json",
            "s3-bucket",
            "acme-customer-exports",
        ),
    ] {
        let v = json(&ir(&["simulate", &format!("events/{file}"), "--json"]));
        assert_eq!(
            v["events"][0]["resource"],
            serde_json::json!({"type": kind, "id": id}),
            "{file}"
        );
    }
}

#[test]
fn skipped_findings_say_why() {
    let v = json(&ir(&[
        "simulate",
        "events/securityhub-guardduty-duplicate.json",
        "--json",
    ]));
    assert!(v["incident_id"].is_null());
    let direct = json(&ir(&[
        "simulate",
        "events/guardduty-cryptocurrency-bitcointool-dns.json",
        "--json",
    ]));
    assert_eq!(v["skipped"][0]["incident_id"], direct["incident_id"]);
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("GuardDuty")
    );
    let v = json(&ir(&[
        "simulate",
        "events/securityhub-workflow-notified.json",
        "--json",
    ]));
    let reasons: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].contains("NOTIFIED") && reasons[1].contains("ARCHIVED"),
        "{reasons:?}"
    );
}

fn refused(args: &[&str], needle: &str) {
    let out = ir(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr, got: {err}"
    );
    assert!(err.contains(needle), "{args:?}: `{needle}` not in `{err}`");
    assert!(!err.contains("panicked"));
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(repo().join("events").join(name)).unwrap()
}

#[test]
fn invalid_inputs_exit_2_with_one_clear_line() {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let gd = sample("guardduty-ssh-bruteforce.json");
    let mut v: serde_json::Value = serde_json::from_str(&gd).unwrap();
    v["detail"].as_object_mut().unwrap().remove("id");
    let no_id = scratch("no-id.json", v.to_string().as_bytes());
    v = serde_json::from_str(&gd).unwrap();
    v["detail"]["severity"] = serde_json::json!(12.5);
    let bad_sev = scratch("bad-severity.json", v.to_string().as_bytes());
    let mut hub: serde_json::Value =
        serde_json::from_str(&sample("securityhub-inspector-cve.json")).unwrap();
    hub["detail"]["findings"] = serde_json::json!([]);
    let empty = scratch("empty.json", hub.to_string().as_bytes());
    v = serde_json::from_str(&gd).unwrap();
    v["source"] = serde_json::json!("aws.ec2()");
    let source = scratch("source.json", v.to_string().as_bytes());
    v = serde_json::from_str(&gd).unwrap();
    v.as_object_mut().unwrap().remove("detail-type");
    let envelope = scratch("envelope.json", v.to_string().as_bytes());
    v = serde_json::from_str(&gd).unwrap();
    v["detail"]["padding"] = serde_json::json!("x".repeat(300 * 1024));
    let big = scratch("big.json", v.to_string().as_bytes());
    let not_json = scratch("not-json.json", b"GuardDuty says hi");
    let binary = scratch("binary.json", &[0xff, 0xfe, 0x00, 0x01]);

    refused(&["simulate", &s(&not_json)], "not JSON");
    refused(&["simulate", &s(&binary)], "not JSON");
    refused(&["simulate", &s(&envelope)], "not an EventBridge envelope");
    refused(
        &["simulate", &s(&source)],
        "unsupported event source `aws.ec2()`",
    );
    refused(
        &["simulate", &s(&no_id)],
        "detail.id: missing required field",
    );
    refused(&["simulate", &s(&bad_sev)], "detail.severity");
    refused(&["simulate", &s(&empty)], "no findings");
    refused(&["simulate", &s(&big)], "over EventBridge's");
    refused(
        &["simulate", "events/does-not-exist.json"],
        "does-not-exist.json",
    );
    refused(
        &[
            "simulate",
            "events/securityhub-inspector-cve.json",
            "--json",
            "--config",
            &s(&not_json),
        ],
        "config",
    );
}

#[test]
fn the_config_registry_and_intel_can_be_replaced() {
    let config = std::fs::read_to_string(repo().join("config/incident-response.yaml")).unwrap();
    let broken = scratch(
        "broken.yaml",
        config
            .replacen("action: cloud:snapshot_volumes", "action: cloud:nope", 1)
            .as_bytes(),
    );
    refused(
        &[
            "simulate",
            "events/guardduty-ssh-bruteforce.json",
            "--config",
            broken.to_str().unwrap(),
        ],
        "/playbooks/0/steps/1/action",
    );
    let intel = scratch("intel.txt", b"203.0.113.50 banana\n");
    refused(
        &[
            "simulate",
            "events/guardduty-ssh-bruteforce.json",
            "--intel",
            intel.to_str().unwrap(),
        ],
        "threat intel line 1",
    );
    // An empty registry and intel list: the bastion is unknown, defaults apply, no intel match.
    let empty_assets = scratch("assets.yaml", b"[]\n");
    let empty_intel = scratch("empty-intel.txt", b"# nothing\n");
    let v = json(&ir(&[
        "simulate",
        "events/guardduty-ssh-bruteforce.json",
        "--json",
        "--assets",
        empty_assets.to_str().unwrap(),
        "--intel",
        empty_intel.to_str().unwrap(),
    ]));
    assert_eq!(v["score_breakdown"]["components"]["threat_score"], 0.0);
    assert_eq!(
        v["enrichment"]["owner"]["value"], "team-platform",
        "the instance's owner tag still applies"
    );
    assert_eq!(v["enrichment"]["criticality"]["origin"], "default");
}

#[test]
fn an_attack_sequence_simulates_as_one_incident_with_a_plan_per_resource() {
    let file = "events/guardduty-attack-sequence-iam-compromised-credentials.json";
    let v = json(&ir(&["simulate", file, "--json"]));
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["playbook"], "immediate-isolation");
    let e = &v["events"][0];
    assert_eq!(
        e["resource"],
        serde_json::json!({"type": "ec2-instance", "id": "i-0a1b2c3d4e5f60001"})
    );
    assert_eq!(
        e["related_resources"],
        serde_json::json!([
            "111122223333/iam-user/ci-deployer",
            "111122223333/s3-bucket/acme-customer-exports"
        ])
    );
    assert_eq!(e["signal_keys"].as_array().unwrap().len(), 2);
    // The steps that run are the instance's; the user's and the bucket's are planned.
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"isolate-instance") && !steps.contains(&"deny-principal"));
    let plans = v["resource_plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0]["resourceKey"], "111122223333/iam-user/ci-deployer");
    let user: Vec<&str> = plans[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(user.contains(&"disable-access-keys") && user.contains(&"deny-principal"));

    let text = String::from_utf8(ir(&["simulate", file]).stdout).unwrap();
    assert!(
        text.contains("Also in scope: iam-user ci-deployer (planned for a responder"),
        "{text}"
    );
    assert!(
        text.contains("also names s3-bucket acme-customer-exports"),
        "{text}"
    );
}
