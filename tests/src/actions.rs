//! Running the suite's actions against the local cloud: their clients (optionally with a
//! [`RequestLog`]), the resources and requests they take, and reading what they return.

// Test fixtures: a result that is not what the test expects must stop it loudly, with the report.
#![allow(clippy::panic)]

use aws_config::SdkConfig;
use ir_actions::{ActionError, ReportBuilder};
use ir_aws::store::{IsolationHolds, TableNames};
use ir_aws::{ClientOptions, Clients};
use ir_core::action::{ActionReport, Change, ContainmentRequest};
use ir_core::config::Mode;
use ir_core::event::{Ec2Instance, IamRole, IamUser, Resource};
use ir_core::{ErrorName, Named};

use crate::localcloud::{LocalCloud, unique_name};
use crate::request_log::RequestLog;

/// The finding id of every [`containment_request`] (32 hex digits, as GuardDuty's).
pub const FINDING_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// The suite's clients for `cloud` (path-style S3, the call log on every client), as a function
/// builds them.
#[must_use]
pub fn clients(cloud: &LocalCloud) -> Clients {
    clients_for(&cloud.sdk_config())
}

/// [`clients`] on any configuration of the emulator's, e.g. one whose endpoint is a
/// [`one_at_a_time`](crate::one_at_a_time) relay.
#[must_use]
pub fn clients_for(sdk: &SdkConfig) -> Clients {
    Clients::new(
        sdk,
        ClientOptions {
            s3_force_path_style: true,
        },
    )
}

/// [`clients`] with a [`RequestLog`] on the EC2 and IAM clients, after the call log, and the
/// request log.
#[must_use]
pub fn recorded_clients(cloud: &LocalCloud) -> (Clients, RequestLog) {
    let sdk = cloud.sdk_config();
    let clients = clients(cloud);
    let log = RequestLog::new(clients.calls());
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk)
            .interceptor(clients.calls().clone())
            .interceptor(log.interceptor("EC2"))
            .build(),
    );
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(clients.calls().clone())
            .interceptor(log.interceptor("IAM"))
            .build(),
    );
    (clients.with_ec2(ec2).with_iam(iam), log)
}

/// The isolation holds of this test process: one keys table on the shared emulator, created on
/// first use (a hold's key names its instance, so tests on their own instances never meet). On
/// clients of their own, so that the request and call logs of the action's clients list the EC2
/// calls the tests assert, unchanged.
///
/// # Panics
/// If the tables cannot be created (a test fixture).
pub async fn holds() -> IsolationHolds {
    static HOLDS: tokio::sync::OnceCell<IsolationHolds> = tokio::sync::OnceCell::const_new();
    HOLDS
        .get_or_init(|| async {
            let clients = clients(crate::support::cloud().await);
            let names = TableNames::with_prefix(&unique_name("holds"));
            if let Err(e) = ir_aws::store::create_tables(&clients, &names).await {
                panic!("creating the tables: {e}");
            }
            IsolationHolds::new(clients, &names)
        })
        .await
        .clone()
}

/// isolate-instance on `clients`, with this process's [`holds`].
///
/// # Errors
/// The action's.
pub async fn isolate(
    clients: &Clients,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    ir_actions::ec2::isolate_instance(clients, &holds().await, req).await
}

/// A finding's EC2 instance known only by its id.
#[must_use]
pub fn ec2_instance(instance_id: &str) -> Ec2Instance {
    Ec2Instance {
        instance_id: instance_id.to_owned(),
        vpc_id: None,
        subnet_id: None,
        network_interfaces: Vec::new(),
        instance_profile_arn: None,
        image_id: None,
        launch_time: None,
    }
}

/// [`ec2_instance`] as a resource.
#[must_use]
pub fn instance_resource(instance_id: &str) -> Resource {
    Resource::Ec2Instance(ec2_instance(instance_id))
}

/// An IAM role known by its name.
#[must_use]
pub fn role_resource(role_name: &str) -> Resource {
    Resource::IamRole(IamRole {
        role_name: role_name.to_owned(),
        access_key_id: None,
        principal_id: None,
    })
}

/// An IAM user known by its name, with the access key the finding names, if any.
#[must_use]
pub fn user_resource(user_name: &str, access_key_id: Option<&str>) -> Resource {
    Resource::IamUser(IamUser {
        user_name: user_name.to_owned(),
        access_key_id: access_key_id.map(str::to_owned),
        principal_id: None,
    })
}

/// A containment step's request (finding [`FINDING_ID`]).
#[must_use]
pub fn containment_request(
    incident_id: &str,
    step_id: &str,
    resource: Resource,
    mode: Mode,
) -> ContainmentRequest {
    ContainmentRequest {
        incident_id: incident_id.to_owned(),
        finding_id: FINDING_ID.to_owned(),
        step_id: step_id.to_owned(),
        resource,
        mode,
    }
}

/// The error of a result that must be one, after checking its name.
///
/// # Panics
/// If `result` is `Ok` (with its value) or the error's name is not `name` (with the error).
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(
    result: Result<T, ActionError>,
    name: ErrorName,
) -> ActionError {
    match result {
        Ok(value) => panic!("expected {name:?}, got {value:#?}"),
        Err(e) => {
            assert_eq!(e.error_name(), name, "{e}");
            e
        }
    }
}

/// The change a report lists for `attribute` of `target`.
///
/// # Panics
/// If there is none (with every change listed).
#[track_caller]
#[must_use]
pub fn change<'a>(report: &'a ActionReport, target: &str, attribute: &str) -> &'a Change {
    report
        .changes
        .iter()
        .find(|c| c.target == target && c.attribute == attribute)
        .unwrap_or_else(|| panic!("no change {target} {attribute} in {:#?}", report.changes))
}

/// A report for release functions (`restore_*`) to add to, as release-containment starts one:
/// step `release`, counting `clients`' calls from now.
#[must_use]
pub fn release_report(clients: &Clients, incident_id: &str, mode: Mode) -> ReportBuilder {
    ReportBuilder::new(
        incident_id,
        "release",
        ir_actions::release::ACTION,
        mode,
        clients.calls().count(),
    )
}
