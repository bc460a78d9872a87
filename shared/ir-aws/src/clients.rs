//! The SDK clients a function uses, each built on first use from one SDK configuration.
//!
//! A function builds only the clients its code calls, and a binary links only the clients its
//! code can reach: `ir-isolate-instance` builds an EC2 client and nothing else. The composition
//! root (a function's `main`) asks for its clients once at init ([`Clients::ec2`] and so on), so
//! the work stays in the cold start and no invocation pays for it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::calls::CallLog;

/// The clients of one process, sharing one configuration and one call log. Cheap to clone: the
/// clones share the clients already built.
#[derive(Debug, Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sdk: SdkConfig,
    options: ClientOptions,
    calls: CallLog,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    iam: OnceLock<aws_sdk_iam::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    sts: OnceLock<aws_sdk_sts::Client>,
    organizations: OnceLock<aws_sdk_organizations::Client>,
    kms: OnceLock<aws_sdk_kms::Client>,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    sfn: OnceLock<aws_sdk_sfn::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    secretsmanager: OnceLock<aws_sdk_secretsmanager::Client>,
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

/// How long one AWS call may take. The SDK sets no attempt or operation timeout of its own: a
/// call whose answer never comes would hold the function until Lambda kills it at its timeout,
/// and the step would fail as `Sandbox.Timedout` without saying which call hung. With these, a
/// hung attempt is abandoned and retried like a throttle (the SDK's standard retry, three
/// attempts), and a call that keeps hanging fails as a `Retryable` error naming the operation,
/// inside the function's own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// One attempt, from sending the request to reading the whole answer.
    pub attempt: Duration,
    /// The whole call, retries and their backoff included.
    pub operation: Duration,
}

impl Default for Timeouts {
    /// Within the template's default function timeout (30 s): three attempts of at most 8 s.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(8),
            operation: Duration::from_secs(25),
        }
    }
}

impl Timeouts {
    /// The defaults, each overridden by a positive number of seconds in
    /// `IR_AWS_CONNECT_TIMEOUT_SECONDS`, `IR_AWS_ATTEMPT_TIMEOUT_SECONDS`,
    /// `IR_AWS_OPERATION_TIMEOUT_SECONDS` (a function with a longer Lambda timeout, uploading
    /// large evidence, sets longer ones). A value that is not a positive number is ignored.
    pub fn from_env() -> Timeouts {
        let seconds = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
        };
        let d = Timeouts::default();
        Timeouts {
            connect: seconds("IR_AWS_CONNECT_TIMEOUT_SECONDS").unwrap_or(d.connect),
            attempt: seconds("IR_AWS_ATTEMPT_TIMEOUT_SECONDS").unwrap_or(d.attempt),
            operation: seconds("IR_AWS_OPERATION_TIMEOUT_SECONDS").unwrap_or(d.operation),
        }
    }

    /// As the SDK takes them.
    pub fn config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// One client accessor: built from the shared configuration with the call log as interceptor,
/// on first use.
macro_rules! client {
    ($(#[$doc:meta])* $name:ident: $sdk:ident $(, |$b:ident, $o:ident| $extra:expr)?) => {
        $(#[$doc])*
        pub fn $name(&self) -> &$sdk::Client {
            self.inner.$name.get_or_init(|| {
                let builder = $sdk::config::Builder::from(&self.inner.sdk)
                    .interceptor(self.inner.calls.clone());
                $(let builder = {
                    let ($b, $o) = (builder, &self.inner.options);
                    $extra
                };)?
                $sdk::Client::from_conf(builder.build())
            })
        }
    };
}

impl Clients {
    /// Clients from an SDK configuration; none is built yet.
    pub fn new(sdk: &SdkConfig, options: ClientOptions) -> Clients {
        Clients::with_log(sdk, options, CallLog::default())
    }

    fn with_log(sdk: &SdkConfig, options: ClientOptions, calls: CallLog) -> Clients {
        Clients {
            inner: Arc::new(Inner {
                sdk: sdk.clone(),
                options,
                calls,
                ec2: OnceLock::new(),
                iam: OnceLock::new(),
                s3: OnceLock::new(),
                sts: OnceLock::new(),
                organizations: OnceLock::new(),
                kms: OnceLock::new(),
                dynamodb: OnceLock::new(),
                sfn: OnceLock::new(),
                sns: OnceLock::new(),
                ssm: OnceLock::new(),
                secretsmanager: OnceLock::new(),
            }),
        }
    }

    /// Clients from the standard AWS configuration chain (environment, profile, instance role),
    /// with the suite's call timeouts ([`Timeouts::from_env`]).
    pub async fn from_env() -> Clients {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(Timeouts::from_env().config())
            .load()
            .await;
        Clients::new(&sdk, ClientOptions::from_env())
    }

    /// Clients of another SDK configuration (another account's credentials, another region)
    /// that share these clients' options and call log: an action acting in a member account
    /// counts its calls there with its calls at home. None is built yet.
    pub fn derived(&self, sdk: &SdkConfig) -> Clients {
        Clients::with_log(sdk, self.inner.options, self.inner.calls.clone())
    }

    /// The SDK configuration the clients are built from (for a client with interceptors of its
    /// own, as `identity` builds).
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.inner.sdk
    }

    /// Every operation started through these clients.
    pub fn calls(&self) -> &CallLog {
        &self.inner.calls
    }

    /// This EC2 client in place of the one these clients would build (one with more
    /// interceptors, say). Only before the first use: a client already built stays.
    pub fn with_ec2(self, client: aws_sdk_ec2::Client) -> Clients {
        let _ = self.inner.ec2.set(client);
        self
    }

    /// This IAM client in place of the one these clients would build; as [`Clients::with_ec2`].
    pub fn with_iam(self, client: aws_sdk_iam::Client) -> Clients {
        let _ = self.inner.iam.set(client);
        self
    }

    /// This Step Functions client in place of the one these clients would build; as
    /// [`Clients::with_ec2`].
    pub fn with_sfn(self, client: aws_sdk_sfn::Client) -> Clients {
        let _ = self.inner.sfn.set(client);
        self
    }

    client!(ec2: aws_sdk_ec2);
    client!(iam: aws_sdk_iam);
    client!(
        /// Path-style addressing when [`ClientOptions::s3_force_path_style`] says so.
        s3: aws_sdk_s3, |b, o| b.force_path_style(o.s3_force_path_style)
    );
    client!(sts: aws_sdk_sts);
    client!(
        /// An account's organizational units (the accounts allow-list).
        organizations: aws_sdk_organizations
    );
    client!(
        /// The approval-token key (tokens sealed at rest).
        kms: aws_sdk_kms
    );
    client!(dynamodb: aws_sdk_dynamodb);
    client!(sfn: aws_sdk_sfn);
    client!(
        /// Notifications (incident updates, approval requests).
        sns: aws_sdk_sns
    );
    client!(
        /// The deployment's config parameter, read at init (`config_source`).
        ssm: aws_sdk_ssm
    );
    client!(
        /// The chat and ticketing credentials, read at init (`secrets`).
        secretsmanager: aws_sdk_secretsmanager
    );
}
