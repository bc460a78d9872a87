//! The on-call responder's view, through the real `ir` against the offline suite: the open
//! incidents with their SLA, what waits for whom, one request's plan and hash.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use ir_tests::TestResult;
use ir_tests::offline::{Offline, Settings};
use serde_json::Value;

use crate::e2e::{GATE_WAIT, GATES, deliver};

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_responder_lists_the_open_incidents_and_what_waits_on_whom() -> TestResult {
    let off = Offline::start(Settings::default()).await?;
    let incident = deliver(&off, "rsp0000000000000000000000000d001").await;
    let asked = off
        .wait_for_approval(&incident, GATES[0], 0, GATE_WAIT)
        .await?;

    // The incident is listed, open, with its resource, its SLA (critical: immediate, due within
    // triage.immediate_window of detection) and its regulatory clock (the victim's asset is
    // confidential: GDPR's 72 hours).
    let listed = json(
        &off.ir_as_responder(&["incidents", "list", "--json"])
            .await?,
    );
    let rows = listed.as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["incidentId"] == incident.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["severity"], "critical");
    assert_eq!(row["status"], "containment");
    assert_eq!(row["resourceId"], off.victim.instance_id.as_str());
    assert_eq!(row["playbook"], "immediate-isolation");
    assert_eq!(row["sla"]["state"], "due", "{row}");
    let left = row["sla"]["seconds_left"].as_i64().unwrap();
    assert!(left > 0 && left <= 15 * 60, "{row}");
    assert_eq!(row["deadlines"][0]["regime"], "gdpr", "{row}");
    let gdpr = row["deadlines"][0]["secondsLeft"].as_i64().unwrap();
    assert!(gdpr > 71 * 3600 && gdpr <= 72 * 3600, "{row}");
    // Filters: another status, another severity, and a window it is outside of.
    for args in [["--status", "resolved"], ["--severity", "low"]] {
        let mut all = vec!["incidents", "list", "--json"];
        all.extend(args);
        let none = json(&off.ir_as_responder(&all).await?);
        assert!(
            none.as_array()
                .unwrap()
                .iter()
                .all(|r| r["incidentId"] != incident.as_str()),
            "{args:?}: {none}"
        );
    }
    let bad = off
        .ir_as_responder(&["incidents", "list", "--status", "open-ish"])
        .await?;
    assert_eq!(bad.status.code(), Some(2));
    let text = off.ir_as_responder(&["incidents", "list"]).await?;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&incident) && text.contains("due in") && text.contains("gdpr: 2d 23h left"),
        "{text}"
    );

    // What waits: the first gate, at the engineers' level, none of two votes, the lead next.
    let waiting = json(
        &off.ir_as_responder(&["approvals", "list", "--json"])
            .await?,
    );
    let gate = waiting
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["incidentId"] == incident.as_str() && w["stepId"] == GATES[0])
        .unwrap_or_else(|| panic!("{waiting}"))
        .clone();
    assert_eq!(gate["level"], 0);
    assert_eq!(gate["role"], "security_engineer");
    assert_eq!(
        (
            gate["approvals"].as_u64(),
            gate["approvalsRequired"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(gate["next"], "security_lead");
    assert_eq!(gate["planHash"].as_str(), asked.plan_hash.as_deref());
    // Mine: alice (an engineer) may decide it; someone holding no role may decide nothing.
    let mine = json(
        &off.ir_as_responder(&["approvals", "list", "--mine", "--json"])
            .await?,
    );
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|w| w["stepId"] == GATES[0]),
        "{mine}"
    );
    let nobody = json(
        &off.ir_as_non_approver(&["approvals", "list", "--mine", "--json"])
            .await?,
    );
    assert_eq!(nobody, Value::Array(vec![]));

    // One request: the plan and the hash an approval names.
    let shown = json(
        &off.ir_as_responder(&["approvals", "show", &incident, GATES[0], "--json"])
            .await?,
    );
    assert_eq!(shown["planHash"].as_str(), asked.plan_hash.as_deref());
    assert_eq!(shown["status"], "pending");
    assert!(
        shown["plan"].is_object() || shown["plan"].is_array(),
        "{shown}"
    );
    let missing = off
        .ir_as_responder(&["approvals", "show", &incident, "no-such-step"])
        .await?;
    assert_eq!(missing.status.code(), Some(3));

    // Once alice approved, the request is no longer hers to decide; bob still may.
    let out = off
        .ir_as(
            &off.people.alice,
            &[
                "approve", &incident, "--step", GATES[0], "--reason", "seen", "--json",
            ],
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = json(
        &off.ir_as(
            &off.people.alice,
            &["approvals", "list", "--mine", "--json"],
        )
        .await?,
    );
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|w| w["stepId"] != GATES[0]),
        "{mine}"
    );
    let bobs = json(
        &off.ir_as(&off.people.bob, &["approvals", "list", "--mine", "--json"])
            .await?,
    );
    let gate = bobs
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["stepId"] == GATES[0])
        .unwrap_or_else(|| panic!("{bobs}"));
    assert_eq!(gate["approvals"], 1);

    // The incident in full, with what waits on it.
    let show = off
        .ir_as_responder(&["incidents", "show", &incident])
        .await?;
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        text.contains("Approvals waiting:") && text.contains(GATES[0]),
        "{text}"
    );
    let full = json(
        &off.ir_as_responder(&["incidents", "show", &incident, "--json"])
            .await?,
    );
    assert_eq!(full["report"]["incidentId"], incident.as_str());
    assert_eq!(full["approvals"][0]["stepId"], GATES[0]);
    Ok(())
}
