//! The SDK clients a function uses, built once at init from one SDK configuration.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::calls::CallLog;

/// Every client of the suite, sharing one configuration and one call log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// Notifications (incident updates, approval requests).
    pub sns: aws_sdk_sns::Client,
    pub calls: CallLog,
}

/// Options that are not part of the standard AWS configuration chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientOptions {
    /// Path-style S3 addressing (S3-compatible endpoints that do not resolve bucket subdomains).
    pub s3_force_path_style: bool,
}

impl ClientOptions {
    /// `IR_S3_FORCE_PATH_STYLE=true` turns on path-style S3 addressing.
    pub fn from_env() -> ClientOptions {
        let s3_force_path_style = std::env::var("IR_S3_FORCE_PATH_STYLE")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        ClientOptions {
            s3_force_path_style,
        }
    }
}

impl Clients {
    /// Clients from an SDK configuration.
    pub fn new(sdk: &SdkConfig, options: ClientOptions) -> Clients {
        let calls = CallLog::default();
        let ec2 = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        let iam = aws_sdk_iam::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .force_path_style(options.s3_force_path_style)
            .build();
        let sts = aws_sdk_sts::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        let sfn = aws_sdk_sfn::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        let sns = aws_sdk_sns::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        Clients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            iam: aws_sdk_iam::Client::from_conf(iam),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sts: aws_sdk_sts::Client::from_conf(sts),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sfn: aws_sdk_sfn::Client::from_conf(sfn),
            sns: aws_sdk_sns::Client::from_conf(sns),
            calls,
        }
    }

    /// Clients from the standard AWS configuration chain (environment, profile, instance role).
    pub async fn from_env() -> Clients {
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Clients::new(&sdk, ClientOptions::from_env())
    }
}
