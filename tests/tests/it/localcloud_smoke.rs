//! Smoke tests of the local cloud: real aws-sdk-rust clients over HTTP against moto.
//!
//! These tests FAIL (never skip) when the emulator cannot start; the error says to run
//! `scripts/bootstrap-python` when the venv or moto is missing. The S3/DynamoDB/EC2 tests share
//! one emulator per test binary and namespace their resources with `unique_name`; the Lambda
//! routing test starts its own emulator because it needs a launcher option and `reset()`.

// Test helpers outside #[test] fns fail loudly by panicking with the harness error.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::create_table::CreateTableOutput;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectLockRetentionMode};
use aws_sdk_sfn::types::ExecutionStatus;
use ir_tests::fixtures::{create_security_group, create_subnet, create_vpc, filter, locked_bucket};
use ir_tests::{
    ACCOUNT_ID, FakeLambda, Fallback, HarnessError, LocalCloud, TestResult, cloud, unique_name,
};
use sha2::{Digest, Sha256};

/// Creates a table keyed by the string `pk`, billed per request.
async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<CreateTableOutput, Box<dyn std::error::Error + Send + Sync>> {
    Ok(ddb
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?)
}

#[tokio::test]
async fn shared_cloud_starts_and_reports_its_endpoint() {
    let cloud = cloud().await;
    assert!(cloud.is_shared());
    assert!(
        cloud.endpoint_url().starts_with("http://127.0.0.1:"),
        "{}",
        cloud.endpoint_url()
    );
    eprintln!("local cloud start time: {:?}", cloud.startup_time());
    // The shared instance must refuse to wipe everyone's state.
    assert!(matches!(
        cloud.reset().await,
        Err(HarnessError::ResetOnShared)
    ));
}

#[tokio::test]
async fn dynamodb_conditional_put_rejects_the_second_write() -> TestResult {
    let cloud = cloud().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cloud.sdk_config());
    let table = unique_name("ir-smoke-locks");

    let created = create_table(&ddb, &table).await?;
    let status = created
        .table_description()
        .and_then(|d| d.table_status())
        .cloned();
    assert_eq!(
        status,
        Some(TableStatus::Active),
        "moto creates tables ACTIVE"
    );

    let put = || {
        ddb.put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("case-0001".into()))
            .item("owner", AttributeValue::S("responder-a".into()))
            .condition_expression("attribute_not_exists(pk)")
    };
    put().send().await?;
    let err = put()
        .send()
        .await
        .expect_err("second conditional put must be refused");
    let service_err = err.into_service_error();
    assert!(
        service_err.is_conditional_check_failed_exception(),
        "expected ConditionalCheckFailedException, got {service_err:?}"
    );

    let item = ddb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("case-0001".into()))
        .consistent_read(true)
        .send()
        .await?;
    assert_eq!(
        item.item().and_then(|i| i.get("owner")),
        Some(&AttributeValue::S("responder-a".into()))
    );
    Ok(())
}

#[tokio::test]
async fn s3_object_lock_compliance_refuses_version_delete() -> TestResult {
    let cloud = cloud().await;
    let s3 = cloud.s3_client();
    let key = "case-0001/memory.lime";
    let body: &[u8] = b"forensic evidence bytes";

    // Object Lock, default retention COMPLIANCE 1 day.
    let bucket = locked_bucket(&s3, "ir-smoke-evidence").await;
    let lock = s3
        .get_object_lock_configuration()
        .bucket(&bucket)
        .send()
        .await?;
    let retention = lock
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .expect("default retention configured");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(retention.days(), Some(1));

    let expected_sha256 = aws_smithy_types::base64::encode(Sha256::digest(body));
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await?;
    let version_id = put
        .version_id()
        .expect("object-lock buckets are versioned")
        .to_owned();
    assert_eq!(
        put.checksum_sha256(),
        Some(expected_sha256.as_str()),
        "PutObject checksum"
    );

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .version_id(&version_id)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await?;
    assert_eq!(
        head.checksum_sha256(),
        Some(expected_sha256.as_str()),
        "stored checksum"
    );
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    assert!(
        head.object_lock_retain_until_date().is_some(),
        "default retention applied"
    );

    let err = s3
        .delete_object()
        .bucket(&bucket)
        .key(key)
        .version_id(&version_id)
        .send()
        .await
        .expect_err("deleting a COMPLIANCE-locked version must be refused");
    assert_eq!(
        err.code(),
        Some("AccessDenied"),
        "unexpected error: {err:?}"
    );

    // Still there, byte for byte.
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .version_id(&version_id)
        .send()
        .await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), body);
    Ok(())
}

#[tokio::test]
async fn ec2_security_group_default_egress_can_be_revoked() -> TestResult {
    let cloud = cloud().await;
    let ec2 = aws_sdk_ec2::Client::new(&cloud.sdk_config());

    let vpc_id = create_vpc(&ec2, "10.42.0.0/16").await;
    // Checks that the subnet is created in the VPC.
    create_subnet(&ec2, &vpc_id, "10.42.1.0/24").await;
    let group_id = create_security_group(
        &ec2,
        &vpc_id,
        &unique_name("ir-smoke-isolation"),
        "isolation group, no egress",
    )
    .await;

    let egress = |ec2: aws_sdk_ec2::Client, group_id: String| async move {
        let out = ec2
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await?;
        let groups = out.security_groups();
        assert_eq!(groups.len(), 1);
        Ok::<_, aws_sdk_ec2::Error>(groups[0].ip_permissions_egress().to_vec())
    };
    let before = egress(ec2.clone(), group_id.clone()).await?;
    assert_eq!(
        before.len(),
        1,
        "a new VPC group has one default egress rule: {before:?}"
    );
    assert_eq!(before[0].ip_protocol(), Some("-1"));
    assert_eq!(
        before[0].ip_ranges().first().and_then(|r| r.cidr_ip()),
        Some("0.0.0.0/0")
    );

    let revoked = ec2
        .revoke_security_group_egress()
        .group_id(&group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await?;
    assert_eq!(revoked.r#return(), Some(true));

    let after = egress(ec2.clone(), group_id.clone()).await?;
    assert!(
        after.is_empty(),
        "egress rules left after revoke: {after:?}"
    );
    let rules = ec2
        .describe_security_group_rules()
        .filters(filter("group-id", &group_id))
        .send()
        .await?;
    let egress_rules: Vec<_> = rules
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() == Some(true))
        .collect();
    assert!(
        egress_rules.is_empty(),
        "egress rules left after revoke: {egress_rules:?}"
    );
    Ok(())
}

#[tokio::test]
async fn step_functions_lambda_tasks_are_routed_to_the_given_endpoint() -> TestResult {
    // A stand-in for `cargo lambda watch`: answers `{"echo": <request payload>}`.
    let lambda = FakeLambda::start(Fallback::Echo).await?;
    let lambda_url = lambda.url();
    let cloud = match LocalCloud::builder()
        .lambda_endpoint(lambda_url)
        .start()
        .await
    {
        Ok(cloud) => cloud,
        Err(e) => panic!("{e}"),
    };
    assert!(!cloud.is_shared());
    // The launcher confirmed (on stderr) that it replaced the engine's Lambda client factory...
    assert_eq!(cloud.lambda_routing(), Some(lambda_url));
    assert!(
        cloud
            .stderr_tail()
            .contains(&format!("lambda routing -> {lambda_url} ")),
        "launcher stderr:\n{}",
        cloud.stderr_tail()
    );

    // ...and a real execution proves it: moto's own Lambda has no such function, so only the
    // routed client can reach our endpoint and make the execution succeed.
    // The second task checks the other half of the launcher's job: the engine's non-Lambda
    // clients must reach this emulator on its random port (MOTO_PORT), not localhost:5000.
    let sfn = aws_sdk_sfn::Client::new(&cloud.sdk_config());
    let ddb = aws_sdk_dynamodb::Client::new(&cloud.sdk_config());
    let table = unique_name("ir-smoke-routing");
    create_table(&ddb, &table).await?;
    let definition = serde_json::json!({
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": { "FunctionName": "ir-fake-fn", "Payload": { "case.$": "$.case" } },
                "ResultSelector": { "payload.$": "$.Payload" },
                "Next": "Record"
            },
            "Record": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {
                    "TableName": table,
                    "Item": { "pk": { "S.$": "$.payload.echo.case" } }
                },
                "ResultPath": null,
                "End": true
            }
        }
    });
    let machine = sfn
        .create_state_machine()
        .name(unique_name("ir-smoke-routing"))
        .definition(definition.to_string())
        .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/ir-smoke-sfn"))
        .send()
        .await?;
    let execution = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .input(r#"{"case":"case-0001"}"#)
        .send()
        .await?;

    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        let d = sfn
            .describe_execution()
            .execution_arn(execution.execution_arn())
            .send()
            .await?;
        if d.status() != &ExecutionStatus::Running {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "execution still RUNNING after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        described.status(),
        &ExecutionStatus::Succeeded,
        "error={:?} cause={:?}",
        described.error(),
        described.cause()
    );
    let output: serde_json::Value = serde_json::from_str(described.output().unwrap_or("null"))?;
    assert_eq!(
        output,
        serde_json::json!({ "payload": { "echo": { "case": "case-0001" } } })
    );

    let (path, payload) = lambda
        .requests()
        .into_iter()
        .next()
        .expect("the fake Lambda endpoint was invoked");
    assert_eq!(path, "/2015-03-31/functions/ir-fake-fn/invocations");
    assert_eq!(payload, serde_json::json!({ "case": "case-0001" }));

    let recorded = ddb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("case-0001".into()))
        .send()
        .await?;
    assert!(
        recorded.item().is_some(),
        "the dynamodb:putItem task did not write to this emulator"
    );

    // A private instance may be reset.
    cloud.reset().await?;
    let machines = sfn.list_state_machines().send().await?;
    assert!(
        machines.state_machines().is_empty(),
        "reset left {:?}",
        machines.state_machines()
    );
    Ok(())
}
