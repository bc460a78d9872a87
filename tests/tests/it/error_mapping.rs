//! How AWS failures reach Step Functions: throttling and 5xx answers become `Retryable`, access
//! errors `AccessDenied`, each logged once with code and request id. The "AWS" here is a tiny HTTP
//! server on loopback that answers every request with the error under test; the clients are the
//! real SDK clients, so the classification sees real wire responses.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use ir_aws::{ClientOptions, Clients};
use ir_core::ErrorName;
use ir_core::action::ContainmentRequest;
use ir_core::config::{Mode, Protection};
use ir_tests::{containment_request, expect_err, instance_resource, role_resource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `status` with `body` to every request, for as long as the test runs.
async fn failing_aws(
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: &'static str,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // One read is enough for these small requests; the answer does not depend on it.
                let _ = sock.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\nx-amzn-requestid: req-0001\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn clients(endpoint: &str) -> Clients {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Clients::new(
        &sdk,
        ClientOptions {
            s3_force_path_style: true,
        },
    )
}

fn role_request() -> ContainmentRequest {
    containment_request(
        "inc-00000000000000000abc",
        "deny",
        role_resource("web"),
        Mode::Enforce,
    )
}

const IAM_THROTTLED: &str = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>req-0001</RequestId></ErrorResponse>"#;
const IAM_DENIED: &str = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized</Message></Error><RequestId>req-0001</RequestId></ErrorResponse>"#;
const EC2_UNAVAILABLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>Unavailable</Code><Message>try again</Message></Error></Errors><RequestID>req-0001</RequestID></Response>"#;

#[tokio::test]
async fn throttling_is_retryable_and_names_code_and_request_id() {
    let c = clients(&failing_aws(400, "Bad Request", "text/xml", IAM_THROTTLED).await);
    let e = expect_err(
        ir_actions::iam::deny_principal(
            &c,
            &Protection::default(),
            "arn:aws:iam::123456789012:policy/ir-suite/ir-containment-deny-all",
            &role_request(),
        )
        .await,
        ErrorName::Retryable,
    );
    let text = e.to_string();
    assert!(
        text.contains("Throttling") && text.contains("req-0001"),
        "{text}"
    );
    assert_eq!(ir_lambda::failure(&e).error_type, "Retryable");
}

#[tokio::test]
async fn a_5xx_is_retryable_even_with_an_unknown_code() {
    let c = clients(&failing_aws(503, "Service Unavailable", "text/xml", EC2_UNAVAILABLE).await);
    let mut req = role_request();
    req.resource = instance_resource("i-0123456789abcdef0");
    let e = expect_err(
        ir_actions::ec2::isolate_instance(
            &c,
            &ir_aws::store::IsolationHolds::new(
                c.clone(),
                &ir_aws::store::TableNames::with_prefix("unreached"),
            ),
            &req,
        )
        .await,
        ErrorName::Retryable,
    );
    // A service answer, not a transport failure: the code and request id are in the message.
    assert!(
        e.to_string().contains("Unavailable") && e.to_string().contains("req-0001"),
        "{e}"
    );
}

#[tokio::test]
async fn access_denied_is_not_retried_and_changes_nothing() {
    let c = clients(&failing_aws(403, "Forbidden", "text/xml", IAM_DENIED).await);
    let e = expect_err(
        ir_actions::iam::revoke_sessions(&c, &Protection::default(), &role_request()).await,
        ErrorName::AccessDenied,
    );
    assert!(
        !matches!(e, ir_actions::ActionError::Incomplete { .. }),
        "nothing was changed, so nothing is incomplete: {e}"
    );
}
