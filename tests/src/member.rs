//! Other accounts of the emulated organization: the suite runs in [`crate::ACCOUNT_ID`] and
//! acts in a member account through the role `member-account.yaml` creates there.
//!
//! The emulator keeps resources per account. The harness reaches a member account directly with
//! moto's `x-moto-account-id` request header (an account's own administrator, as StackSets
//! deploys there), to create what that account holds; the suite reaches it only the way it
//! does in AWS, by `sts:AssumeRole` of the member role (which the launcher refuses, as AWS does,
//! for a missing role or a missing external id).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use ir_aws::{ClientOptions, Clients};
use ir_core::accounts::{MEMBER_DENY_POLICY_NAME, MEMBER_PATH, MEMBER_ROLE_NAME};
use serde_json::{Value, json};

use crate::ACCOUNT_ID;

/// A member account the suite may act in.
pub const MEMBER_ACCOUNT: &str = "222233334444";
/// Another region than the suite's.
pub const MEMBER_REGION: &str = "eu-west-1";
/// An account the config does not allow.
pub const OUTSIDE_ACCOUNT: &str = "333344445555";
/// An allowed account where `member-account.yaml` was never deployed.
pub const UNPREPARED_ACCOUNT: &str = "444455556666";
/// The external id the member role's trust requires and the suite's config carries.
pub const EXTERNAL_ID: &str = "ir-offline-3f1c9a";
/// The suite's stack name as the member trust names its roles: the offline suite's roles are
/// `role/ir-suite/<function>` (`offline::suite_principals`), i.e. the template's
/// `<stack>-<action>` with stack `ir`.
pub const SUITE_STACK: &str = "ir";

/// The action roles `member-account.yaml` trusts, after `<stack>-`.
pub const TRUSTED_ACTIONS: [&str; 7] = [
    "isolate-instance",
    "snapshot-volumes",
    "terminate-instance",
    "revoke-sessions",
    "deny-principal",
    "disable-access-keys",
    "collect-evidence",
];

/// Sends every request in `account` (moto's `x-moto-account-id`).
#[derive(Debug, Clone)]
struct InAccount(String);

impl Intercept for InAccount {
    fn name(&self) -> &'static str {
        "InAccount"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// Clients acting in `account` and `region` as that account's own administrator (EC2 and IAM:
/// what a member account holds of a victim).
pub fn clients_in(home: &Clients, account: &str, region: &str) -> Clients {
    let sdk = home
        .sdk_config()
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk)
            .interceptor(InAccount(account.to_owned()))
            .build(),
    );
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(InAccount(account.to_owned()))
            .build(),
    );
    Clients::new(
        &sdk,
        ClientOptions {
            s3_force_path_style: true,
        },
    )
    .with_ec2(ec2)
    .with_iam(iam)
}

/// The member role's trust policy as `member-account.yaml` renders it for the security account
/// `security_account`, stack [`SUITE_STACK`] and external id `external_id` (no organization id):
/// the security account's root as principal, only the suite's action roles
/// (`aws:PrincipalArn`), the external id required.
pub fn trust_policy(security_account: &str, external_id: &str) -> Value {
    let roles: Vec<String> = TRUSTED_ACTIONS
        .iter()
        .map(|a| format!("arn:aws:iam::{security_account}:role/ir-suite/{SUITE_STACK}-{a}"))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SuiteActionRolesOnly",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{security_account}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {
                "ArnEquals": {"aws:PrincipalArn": roles},
                "StringEquals": {"sts:ExternalId": external_id}
            }
        }]
    })
}

/// What `member-account.yaml` creates in the account `member` reaches: the member role (trusting
/// the suite in [`ACCOUNT_ID`] with [`EXTERNAL_ID`]) and the member's deny-all policy. Returns
/// the role's ARN.
///
/// # Errors
/// IAM refused.
pub async fn deploy_member_stack(member: &Clients) -> Result<String, String> {
    let role = member
        .iam()
        .create_role()
        .role_name(MEMBER_ROLE_NAME)
        .path(MEMBER_PATH)
        .assume_role_policy_document(trust_policy(ACCOUNT_ID, EXTERNAL_ID).to_string())
        .send()
        .await
        .map_err(|e| format!("CreateRole: {e:?}"))?;
    let arn = role
        .role()
        .map(|r| r.arn().to_owned())
        .ok_or("CreateRole answered no role")?;
    member
        .iam()
        .create_policy()
        .path(MEMBER_PATH)
        .policy_name(MEMBER_DENY_POLICY_NAME)
        .policy_document(
            ir_core::action::policy_document(
                ir_core::action::PolicyPurpose::DenyAll,
                time::OffsetDateTime::now_utc(),
            )
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("CreatePolicy: {e:?}"))?;
    Ok(arn)
}
