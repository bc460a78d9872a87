#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ir_chat::Secret;
use ir_chat::fake::{FAKE_SIGNING_SECRET, block_actions_payload, signed_interaction};
use ir_chat::slack::blocks::{APPROVE_ACTION_ID, REJECT_ACTION_ID};
use ir_chat::slack::interaction::parse_payload_json;
use ir_chat::slack::verify::{MAX_SKEW, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use ir_chat::slack::{
    ApprovalChoice, ApprovalRef, PayloadError, VerifyError, parse_interaction, verify,
    verify_headers,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;

const T: i64 = 1_776_695_520; // 2026-04-20 14:32 UTC

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn secret() -> Secret {
    Secret::new(FAKE_SIGNING_SECRET)
}

fn value() -> String {
    ApprovalRef::new("INC-2026-042", "isolate", "a1".repeat(32), 0)
        .unwrap()
        .encode()
}

fn payload() -> Value {
    block_actions_payload(
        "U0ANA1234",
        APPROVE_ACTION_ID,
        &value(),
        "C0APPROVALS",
        "1733000001.000100",
    )
}

#[test]
fn a_signed_request_verifies_and_names_its_replay_key() {
    let req = signed_interaction(&secret(), T, &payload());
    let ok = verify(
        &secret(),
        Some(&req.timestamp),
        Some(&req.signature),
        &req.body,
        at(T + 3),
    )
    .unwrap();
    assert_eq!(ok.request_time, at(T));
    assert_eq!(ok.replay_key_expires_at, at(T) + MAX_SKEW);
    assert_eq!(ok.replay_key.len(), 64);

    // The same request again gives the same key (the caller refuses it); another does not.
    let again = verify_headers(&secret(), req.headers(), &req.body, at(T + 10)).unwrap();
    assert_eq!(again.replay_key, ok.replay_key);
    let other = signed_interaction(&secret(), T + 1, &payload());
    let other = verify_headers(&secret(), other.headers(), &other.body, at(T + 10)).unwrap();
    assert_ne!(other.replay_key, ok.replay_key);
}

#[test]
fn header_names_are_matched_in_any_case_and_only_once() {
    let req = signed_interaction(&secret(), T, &payload());
    let lower = [
        ("x-slack-request-timestamp", req.timestamp.as_str()),
        ("x-slack-signature", req.signature.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    assert!(verify_headers(&secret(), lower, &req.body, at(T)).is_ok());
    let twice = [
        ("x-slack-request-timestamp", req.timestamp.as_str()),
        ("X-Slack-Request-Timestamp", req.timestamp.as_str()),
        ("x-slack-signature", req.signature.as_str()),
    ];
    assert_eq!(
        verify_headers(&secret(), twice, &req.body, at(T)),
        Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER))
    );
}

#[test]
fn a_wrong_secret_or_a_tampered_body_is_refused() {
    let req = signed_interaction(&secret(), T, &payload());
    let err = verify_headers(
        &Secret::new("another-secret"),
        req.headers(),
        &req.body,
        at(T),
    )
    .unwrap_err();
    assert_eq!(err, VerifyError::InvalidSignature);
    assert_eq!(err.name(), "InvalidSignature");

    let mut tampered = req.body.clone();
    let i = tampered.len() - 3;
    tampered[i] ^= 1;
    assert_eq!(
        verify_headers(&secret(), req.headers(), &tampered, at(T)),
        Err(VerifyError::InvalidSignature)
    );
    // Another timestamp with the same signature.
    let moved = (T + 1).to_string();
    assert_eq!(
        verify(
            &secret(),
            Some(&moved),
            Some(&req.signature),
            &req.body,
            at(T)
        ),
        Err(VerifyError::InvalidSignature)
    );
    // The signature in upper case is the same bytes.
    let upper = format!("v0={}", req.signature[3..].to_ascii_uppercase());
    assert!(
        verify(
            &secret(),
            Some(&req.timestamp),
            Some(&upper),
            &req.body,
            at(T)
        )
        .is_ok()
    );
}

#[test]
fn a_request_more_than_five_minutes_off_is_stale_either_way() {
    let req = signed_interaction(&secret(), T, &payload());
    let check = |now: i64| verify_headers(&secret(), req.headers(), &req.body, at(now));
    assert!(check(T + 300).is_ok());
    assert!(check(T - 300).is_ok());
    let old = check(T + 301).unwrap_err();
    assert_eq!(old, VerifyError::StaleRequest { skew_seconds: 301 });
    assert_eq!(old.name(), "StaleRequest");
    assert_eq!(
        check(T - 301),
        Err(VerifyError::StaleRequest { skew_seconds: -301 })
    );
    assert_eq!(
        check(T + 86_400),
        Err(VerifyError::StaleRequest {
            skew_seconds: 86_400
        })
    );
}

#[test]
fn missing_or_garbled_headers_are_named() {
    let req = signed_interaction(&secret(), T, &payload());
    let ts = req.timestamp.as_str();
    let sig = req.signature.as_str();
    let v = |t: Option<&str>, s: Option<&str>| verify(&secret(), t, s, &req.body, at(T));
    let missing_ts = v(None, Some(sig)).unwrap_err();
    assert_eq!(missing_ts, VerifyError::MissingHeader(TIMESTAMP_HEADER));
    assert_eq!(missing_ts.name(), "MissingHeader");
    assert_eq!(
        v(Some(" "), Some(sig)),
        Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
    );
    assert_eq!(
        v(Some(ts), None),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
    assert_eq!(
        verify_headers(&secret(), [("content-type", "x")], &req.body, at(T)),
        Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
    );
    for bad_ts in ["-1", "1.5", "abc", "99999999999999999999", "１２"] {
        assert_eq!(
            v(Some(bad_ts), Some(sig)),
            Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER)),
            "{bad_ts}"
        );
    }
    let hex = &sig[3..];
    for bad_sig in [
        hex.to_owned(),
        format!("v1={hex}"),
        format!("v0={}", &hex[..62]),
        format!("v0={}zz", &hex[..62]),
        "v0=".to_owned(),
    ] {
        assert_eq!(
            v(Some(ts), Some(&bad_sig)),
            Err(VerifyError::MalformedHeader(SIGNATURE_HEADER)),
            "{bad_sig}"
        );
    }
    assert_eq!(
        verify(&Secret::new(""), Some(ts), Some(sig), &req.body, at(T)),
        Err(VerifyError::NoSigningSecret)
    );
}

#[test]
fn a_real_shaped_block_actions_payload_is_read() {
    let req = signed_interaction(&secret(), T, &payload());
    let p = parse_interaction(&req.body).unwrap();
    assert_eq!(p.user_id, "U0ANA1234");
    assert_eq!(p.user_name.as_deref(), Some("ana.responder"));
    assert_eq!(p.team_id, "T0FAKE000");
    assert_eq!(p.api_app_id.as_deref(), Some("A0FAKEAPP01"));
    assert_eq!(p.channel_id, "C0APPROVALS");
    assert_eq!(p.message_ts, "1733000001.000100");
    assert_eq!(
        p.response_url.as_deref(),
        Some("https://hooks.slack.com/actions/T0FAKE000/1733000000000/fAkErEsPoNsEuRl")
    );
    assert_eq!(p.action.action_id, APPROVE_ACTION_ID);
    assert_eq!(p.action.kind, "button");
    assert_eq!(p.action.block_id.as_deref(), Some("ir_approval"));
    let (choice, r) = p.approval().unwrap();
    assert_eq!(choice, ApprovalChoice::Approve);
    assert_eq!(r.step_id(), "isolate");
    assert_eq!(r.plan_hash(), "a1".repeat(32));

    let mut reject = payload();
    reject["actions"][0]["action_id"] = json!(REJECT_ACTION_ID);
    let p = parse_payload_json(&reject.to_string()).unwrap();
    assert_eq!(p.approval().unwrap().0, ApprovalChoice::Reject);
}

#[test]
fn the_message_is_found_without_a_container_too() {
    let mut p = payload();
    p.as_object_mut().unwrap().remove("container");
    let read = parse_payload_json(&p.to_string()).unwrap();
    assert_eq!(read.channel_id, "C0APPROVALS");
    assert_eq!(read.message_ts, "1733000001.000100");
}

type Change = Box<dyn Fn(&mut Value)>;

fn malformed(p: &Value) -> PayloadError {
    parse_payload_json(&p.to_string()).unwrap_err()
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let form = |s: &str| parse_interaction(s.as_bytes()).unwrap_err();
    assert_eq!(form("").name(), "MalformedPayload");
    assert_eq!(form("payload=%7B").name(), "MalformedPayload");
    assert_eq!(form("payload=1&payload=2").name(), "MalformedPayload");
    assert_eq!(form("other=x").name(), "MalformedPayload");
    assert_eq!(
        parse_interaction(&vec![b'a'; 600 * 1024]).unwrap_err(),
        PayloadError::TooLarge
    );

    let mut p = payload();
    p["type"] = json!("view_submission");
    assert_eq!(
        malformed(&p),
        PayloadError::Unsupported("view_submission".to_owned())
    );
    assert_eq!(malformed(&p).name(), "UnsupportedPayload");

    let cases: Vec<(&str, Change)> = vec![
        (
            "no user",
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("user");
            }),
        ),
        ("user id empty", Box::new(|p| p["user"]["id"] = json!(""))),
        (
            "user id not a string",
            Box::new(|p| p["user"]["id"] = json!(42)),
        ),
        ("no actions", Box::new(|p| p["actions"] = json!([]))),
        (
            "actions not a list",
            Box::new(|p| p["actions"] = json!({"a": 1})),
        ),
        (
            "channel differs",
            Box::new(|p| p["channel"]["id"] = json!("C0OTHER")),
        ),
        (
            "ts differs",
            Box::new(|p| p["message"]["ts"] = json!("1.2")),
        ),
        (
            "no channel",
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("channel");
                p["container"].as_object_mut().unwrap().remove("channel_id");
            }),
        ),
        (
            "control character",
            Box::new(|p| p["actions"][0]["value"] = json!("a\u{0}b")),
        ),
        (
            "value too long",
            Box::new(|p| p["actions"][0]["value"] = json!("x".repeat(2001))),
        ),
        ("not an object", Box::new(|p| *p = json!([1, 2]))),
    ];
    for (what, change) in cases {
        let mut p = payload();
        change(&mut p);
        assert_eq!(malformed(&p).name(), "MalformedPayload", "{what}");
    }

    // Well-formed, but not an approval button or not a valid reference.
    let mut p = payload();
    p["actions"][0]["action_id"] = json!("something_else");
    assert!(
        parse_payload_json(&p.to_string())
            .unwrap()
            .approval()
            .is_err()
    );
    let mut p = payload();
    p["actions"][0]["value"] = json!("INC-1|isolate|hash|0");
    assert_eq!(
        parse_payload_json(&p.to_string())
            .unwrap()
            .approval()
            .unwrap_err()
            .name(),
        "MalformedPayload"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_to_a_result(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_interaction(&body);
        let mut with_prefix = b"payload=".to_vec();
        with_prefix.extend_from_slice(&body);
        let _ = parse_interaction(&with_prefix);
    }

    #[test]
    fn any_json_text_parses_to_a_result(s in "\\PC{0,512}") {
        let _ = parse_payload_json(&s);
        let _ = ApprovalRef::decode(&s);
    }

    #[test]
    fn mutated_payloads_parse_to_a_result(i in 0usize..4096, b in any::<u8>()) {
        let mut text = payload().to_string().into_bytes();
        let at = i % text.len();
        text[at] = b;
        if let Ok(s) = std::str::from_utf8(&text) {
            let _ = parse_payload_json(s);
        }
    }

    #[test]
    fn random_headers_never_verify(
        ts in "\\PC{0,24}",
        sig in "\\PC{0,80}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        prop_assert!(verify(&secret(), Some(&ts), Some(&sig), &body, at(T)).is_err());
    }

    #[test]
    fn a_signature_verifies_only_its_own_body(
        body in proptest::collection::vec(any::<u8>(), 1..256),
        flip in any::<usize>(),
    ) {
        let ts = T.to_string();
        let sig = ir_chat::slack::verify::signature(&secret(), &ts, &body);
        prop_assert!(verify(&secret(), Some(&ts), Some(&sig), &body, at(T)).is_ok());
        let mut other = body.clone();
        let i = flip % other.len();
        other[i] ^= 0x01;
        prop_assert_eq!(
            verify(&secret(), Some(&ts), Some(&sig), &other, at(T)),
            Err(VerifyError::InvalidSignature)
        );
    }
}
