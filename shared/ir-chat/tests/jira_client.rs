#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use ir_chat::fake::{
    FAKE_JIRA_EMAIL, FAKE_JIRA_TOKEN, JIRA_ISSUE_PATH, JIRA_SEARCH_PATH, RecordingSleep, Scripted,
};
use ir_chat::jira::{JiraClient, JiraError, NewIssue, incident_description};
use ir_chat::{Link, RetryPolicy, Secret};
use serde_json::{Value, json};

fn issue(step: &str) -> NewIssue {
    NewIssue {
        incident_id: "INC-2026-042".to_owned(),
        step_id: step.to_owned(),
        project_key: "IR".to_owned(),
        issue_type: "Task".to_owned(),
        summary: "High severity incident INC-2026-042 on\nec2 instance i-0abc".to_owned(),
        description: incident_description(
            &update(),
            Some(&Link::new(
                "INC-2026-042",
                "https://ir.example/incidents/INC-2026-042",
            )),
        ),
        labels: vec!["security incident".to_owned(), "ir".to_owned()],
        priority: Some("High".to_owned()),
    }
}

#[tokio::test]
async fn create_once_creates_then_finds_the_same_issue() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let client = jira(&server, &sleep);

    let first = client.create_issue_once(&issue("ticket")).await.unwrap();
    assert!(!first.already_existed);
    assert_eq!(first.issue.key, "IR-1");
    assert_eq!(first.issue.id, "10001");
    assert_eq!(
        first.issue.self_url.as_deref(),
        Some(format!("{}/rest/api/3/issue/10001", server.base_url()).as_str())
    );
    assert_eq!(
        first.browse_url,
        format!("{}/browse/IR-1", server.base_url())
    );

    let second = client.create_issue_once(&issue("ticket")).await.unwrap();
    assert!(second.already_existed);
    assert_eq!(second.issue.key, "IR-1");
    assert_eq!(second.browse_url, first.browse_url);

    assert_eq!(server.requests_to(JIRA_ISSUE_PATH).len(), 1);
    let searches = server.requests_to(JIRA_SEARCH_PATH);
    assert_eq!(searches.len(), 2);
    assert_eq!(
        searches[0].body,
        Some(json!({
            "jql": "labels = \"ir-inc-2026-042-ticket\"",
            "fields": ["key"],
            "maxResults": 1
        }))
    );

    // Another step of the same incident gets its own issue.
    let other = client.create_issue_once(&issue("ticket-2")).await.unwrap();
    assert!(!other.already_existed);
    assert_eq!(other.issue.key, "IR-2");
    assert_eq!(server.jira_issues().len(), 2);
}

#[tokio::test]
async fn the_issue_is_sent_in_jiras_shape_with_basic_auth() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    jira(&server, &sleep)
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap();
    let req = &server.requests_to(JIRA_ISSUE_PATH)[0];
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{FAKE_JIRA_EMAIL}:{FAKE_JIRA_TOKEN}"))
    );
    assert_eq!(req.header("authorization"), Some(expected.as_str()));
    assert!(
        req.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let fields = &req.body.as_ref().unwrap()["fields"];
    assert_eq!(fields["project"], json!({"key": "IR"}));
    assert_eq!(fields["issuetype"], json!({"name": "Task"}));
    assert_eq!(fields["priority"], json!({"name": "High"}));
    assert_eq!(
        fields["summary"],
        "High severity incident INC-2026-042 on ec2 instance i-0abc"
    );
    assert_eq!(
        fields["labels"],
        json!(["security-incident", "ir", "ir-inc-2026-042-ticket"])
    );
    let d = &fields["description"];
    assert_eq!(d["type"], "doc");
    assert_eq!(d["version"], 1);
    let content = d["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "paragraph");
    assert_eq!(
        content[0]["content"][0]["marks"],
        json!([{"type": "strong"}])
    );
    assert_eq!(content[0]["content"][1]["text"], "INC-2026-042");
    let headings: Vec<&str> = content
        .iter()
        .filter(|n| n["type"] == "heading")
        .map(|n| n["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        headings,
        ["Summary", "Scope", "Actions taken", "Next steps", "Links"]
    );
    let kinds: Vec<&str> = content
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"bulletList") && kinds.contains(&"orderedList"));
    let links: Vec<&Value> = content.last().unwrap()["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|li| &li["content"][0]["content"][0])
        .collect();
    assert_eq!(links[0]["text"], "INC-2026-042");
    assert_eq!(
        links[0]["marks"],
        json!([{"type": "link", "attrs": {"href": "https://ir.example/incidents/INC-2026-042"}}])
    );
    assert_eq!(links[1]["text"], "IR-7");
}

#[tokio::test]
async fn a_429_on_search_waits_then_goes_on() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        JIRA_SEARCH_PATH,
        1,
        Scripted::RateLimited {
            retry_after_secs: 2,
        },
    );
    let created = jira(&server, &sleep)
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap();
    assert_eq!(created.issue.key, "IR-1");
    assert_eq!(sleep.waits(), [Duration::from_secs(2)]);
    assert_eq!(server.requests_to(JIRA_SEARCH_PATH).len(), 2);
    assert_eq!(server.requests_to(JIRA_ISSUE_PATH).len(), 1);
}

#[tokio::test]
async fn a_429_past_the_budget_is_rate_limited() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        JIRA_ISSUE_PATH,
        1,
        Scripted::RateLimited {
            retry_after_secs: 600,
        },
    );
    let err = jira(&server, &sleep)
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        JiraError::RateLimited {
            retry_after: Some(Duration::from_secs(600)),
            attempts: 1
        }
    );
    assert!(sleep.waits().is_empty());
    assert!(server.jira_issues().is_empty());
}

#[tokio::test]
async fn server_errors_on_create_are_retried() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(JIRA_ISSUE_PATH, 2, Scripted::Status(500));
    let created = jira(&server, &sleep)
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap();
    assert!(!created.already_existed);
    assert_eq!(server.requests_to(JIRA_ISSUE_PATH).len(), 3);
    assert_eq!(sleep.waits().len(), 2);
    assert_eq!(server.jira_issues().len(), 1);
}

#[tokio::test]
async fn server_errors_end_after_the_last_attempt() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(JIRA_SEARCH_PATH, 9, Scripted::Status(502));
    let err = jira(&server, &sleep)
        .with_retry(RetryPolicy {
            max_attempts: 2,
            ..policy()
        })
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        JiraError::Server {
            status: 502,
            attempts: 2
        }
    );
    assert_eq!(err.name(), "ServerError");
    assert!(server.requests_to(JIRA_ISSUE_PATH).is_empty());
}

#[tokio::test]
async fn a_refused_field_carries_jiras_errors_and_is_not_retried() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let mut i = issue("ticket");
    i.project_key = "NOPE".to_owned();
    i.priority = Some("Urgent!!".to_owned());
    let err = jira(&server, &sleep)
        .create_issue_once(&i)
        .await
        .unwrap_err();
    match &err {
        JiraError::Rejected {
            status,
            error_messages,
            errors,
        } => {
            assert_eq!(*status, 400);
            assert!(error_messages.is_empty());
            assert_eq!(errors["project"], "valid project is required");
            assert!(errors.contains_key("priority"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.name(), "JiraApiError");
    assert!(
        err.to_string()
            .contains("project: valid project is required")
    );
    assert_eq!(server.requests_to(JIRA_ISSUE_PATH).len(), 1);
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_never_shown() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    let client = JiraClient::new(
        server.jira_url(),
        FAKE_JIRA_EMAIL,
        Secret::new("ATATT-wrong-token-77"),
    )
    .unwrap()
    .with_sleep(sleep.clone());
    let err = client
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        JiraError::Unauthorized {
            messages: vec!["Client must be authenticated to access this resource.".to_owned()]
        }
    );
    assert_eq!(err.name(), "Unauthorized");
    assert!(!format!("{err} {err:?} {client:?}").contains("ATATT-wrong-token-77"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_search_answer_without_issues_is_a_bad_response() {
    let server = server().await;
    let sleep = RecordingSleep::new();
    server.script(
        JIRA_SEARCH_PATH,
        1,
        Scripted::Json {
            status: 200,
            body: json!({"isLast": true}),
        },
    );
    let err = jira(&server, &sleep)
        .create_issue_once(&issue("ticket"))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "BadResponse");
    assert!(server.requests_to(JIRA_ISSUE_PATH).is_empty());
}

#[test]
fn a_bad_configuration_is_refused() {
    assert_eq!(
        JiraClient::new("example.atlassian.net", "a@b.c", Secret::new("t"))
            .unwrap_err()
            .name(),
        "InvalidConfig"
    );
    assert_eq!(
        JiraClient::new("https://example.atlassian.net", "a@b.c", Secret::new(""))
            .unwrap_err()
            .name(),
        "InvalidConfig"
    );
    let c = JiraClient::new("https://example.atlassian.net/", "a@b.c", Secret::new("t")).unwrap();
    assert_eq!(
        c.browse_url("IR-9"),
        "https://example.atlassian.net/browse/IR-9"
    );
}
