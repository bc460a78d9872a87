//! The configuration a deployment names, read from the emulator's SSM and S3 with real SDK
//! calls: `ir_aws::config_source` against the emulator, then the function binaries themselves,
//! whose init must fail on a refused config with its origin and the path of the error.
//!
//! The binary tests need the workspace's binaries (`cargo build --workspace --bins --tests`).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use ir_aws::Clients;
use ir_aws::config_source::{fetch, load_from};
use ir_core::config::{DEFAULT_CONFIG_YAML, Mode};
use ir_env::{ConfigSource, Overlay};
use ir_tests::offline::{bin_dir, function_binaries};
use ir_tests::{LocalCloud, REGION, TestResult, clients, cloud, repo_root, unique_name};

const ENGINEER: &str = "        - arn:aws:iam::111122223333:role/SecurityEngineer\n";
const CAROL: &str = "arn:aws:sts::123456789012:assumed-role/Oncall/carol";

fn with(from: &str, to: &str) -> String {
    assert!(
        DEFAULT_CONFIG_YAML.contains(from),
        "`{from}` not in the default config"
    );
    DEFAULT_CONFIG_YAML.replacen(from, to, 1)
}

/// The default config with carol's session as the only security engineer.
fn carol_config() -> String {
    with(ENGINEER, &format!("        - {CAROL}\n"))
}

/// A config the schema refuses, at `/triage/scoring/weights/severity`.
fn invalid_config() -> String {
    with("      severity: 0.4", "      severity: 1.4")
}

/// A config whose critical gates would have three escalation levels (the deployed ones have two).
fn three_levels_config() -> String {
    with(
        "      - role: security_lead\n        timeout: 15m\n",
        "      - role: security_lead\n        timeout: 15m\n      - role: security_lead\n        timeout: 1h\n",
    )
}

async fn put_parameter(clients: &Clients, text: &str, kind: ParameterType) -> String {
    let name = format!("/{}/config", unique_name("ir"));
    clients
        .ssm()
        .put_parameter()
        .name(&name)
        .value(text)
        .r#type(kind)
        .send()
        .await
        .unwrap();
    name
}

fn ssm(name: &str) -> ConfigSource {
    ConfigSource::SsmParameter(name.to_owned())
}

#[tokio::test]
async fn a_config_in_an_ssm_parameter_is_read_with_decryption() -> TestResult {
    let clients = clients(cloud().await);
    for kind in [ParameterType::SecureString, ParameterType::String] {
        let name = put_parameter(&clients, &carol_config(), kind.clone()).await;
        // As stored: a SecureString is read decrypted.
        assert_eq!(
            fetch(&clients, &ssm(&name)).await?,
            carol_config(),
            "{kind:?}"
        );
        let mark = clients.calls().count();
        let config = load_from(&clients, &ssm(&name), &Overlay::default()).await?;
        assert_eq!(
            config.notifications.approver_roles[0].identities,
            [CAROL],
            "{kind:?}"
        );
        let sent = clients.calls().since(mark);
        assert!(
            sent.len() == 1 && sent[0].ends_with("GetParameter"),
            "one call: {sent:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_config_in_an_s3_object_is_read() -> TestResult {
    let cloud = cloud().await;
    let clients = clients(cloud);
    let bucket = unique_name("ir-config");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    clients
        .s3()
        .put_object()
        .bucket(&bucket)
        .key("suite/incident-response.yaml")
        .body(carol_config().into_bytes().into())
        .send()
        .await?;
    let source = ConfigSource::S3Object {
        bucket: bucket.clone(),
        key: "suite/incident-response.yaml".to_owned(),
    };
    let overlay = Overlay::from_vars([(
        "IR_PLAYBOOK_MODE_IMMEDIATE_ISOLATION".to_owned(),
        "enforce".to_owned(),
    )])?;
    let config = load_from(&clients, &source, &overlay).await?;
    assert_eq!(config.notifications.approver_roles[0].identities, [CAROL]);
    assert_eq!(config.playbooks[0].mode, Some(Mode::Enforce));

    // An object that is not there: the origin and S3's answer.
    let missing = ConfigSource::S3Object {
        bucket,
        key: "nothing-here.yaml".to_owned(),
    };
    let e = load_from(&clients, &missing, &Overlay::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "config {missing}: s3:GetObject failed with NoSuchKey"
        )),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_config_in_ssm_names_its_origin_and_why() -> TestResult {
    let clients = clients(cloud().await);
    // Not there.
    let absent = format!("/{}/config", unique_name("ir"));
    let e = load_from(&clients, &ssm(&absent), &Overlay::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "config ssm:{absent}: ssm:GetParameter failed with ParameterNotFound"
        )),
        "{e}"
    );
    // Invalid: the schema's path.
    let name = put_parameter(&clients, &invalid_config(), ParameterType::SecureString).await;
    let e = load_from(&clients, &ssm(&name), &Overlay::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("config ssm:{name}: config is invalid: "))
            && e.contains("/triage/scoring/weights/severity"),
        "{e}"
    );
    // Valid, but it needs other state machines than the deployed ones.
    let name = put_parameter(&clients, &three_levels_config(), ParameterType::String).await;
    let e = load_from(&clients, &ssm(&name), &Overlay::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "config ssm:{name} needs state machines other than the deployed ones"
        )) && e.contains("3 escalation levels instead of 2")
            && e.contains("make it config/incident-response.yaml, run `ir playbooks render`, commit, and redeploy"),
        "{e}"
    );
    Ok(())
}

/// The functions whose main loads the config (`ir_aws::config_source`), and the others.
fn loaders() -> (Vec<String>, Vec<String>) {
    function_binaries().unwrap().into_iter().partition(|f| {
        let main = repo_root().join("functions").join(f).join("src/main.rs");
        std::fs::read_to_string(main)
            .unwrap()
            .contains("ir_aws::config_source::")
    })
}

/// Starts `binary` with the offline suite's environment shape (placeholder names: init reads
/// them but calls nothing with them before the config) and `extra`, no Lambda Runtime API to
/// poll; returns its exit status and what it printed.
async fn init(cloud: &LocalCloud, binary: &str, extra: &[(&str, &str)]) -> (bool, String) {
    let arn = |kind: &str| format!("arn:aws:iam::123456789012:{kind}");
    let mut command = tokio::process::Command::new(bin_dir().unwrap().join(binary));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", cloud.endpoint_url())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", ir_tests::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", ir_tests::SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("IR_S3_FORCE_PATH_STYLE", "true")
        .env("IR_INCIDENTS_TABLE", "t-incidents")
        .env("IR_KEYS_TABLE", "t-keys")
        .env("IR_AUDIT_TABLE", "t-audit")
        .env("IR_APPROVALS_TABLE", "t-approvals")
        .env("IR_EVIDENCE_BUCKET", "t-evidence")
        .env(
            "IR_NOTIFY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:t",
        )
        .env(
            "IR_DENY_POLICY_ARN",
            arn("policy/ir-suite/t-containment-deny-all"),
        )
        .env(
            "IR_APPROVAL_TOKEN_KEY",
            "arn:aws:kms:us-east-1:123456789012:key/t",
        )
        .env(
            "IR_TRIAGE_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:t",
        )
        .env("IR_SUITE_PRINCIPALS", arn("role/ir-suite/t"))
        // Nothing listens here: a function whose init passed would fail polling, not hang.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{binary} neither started nor failed within 60 s"))
        .unwrap_or_else(|e| panic!("{binary}: {e} (cargo build --workspace --bins --tests)"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[tokio::test]
async fn every_function_that_reads_the_config_fails_init_on_a_refused_one() -> TestResult {
    let cloud = cloud().await;
    let clients = clients(cloud);
    let (loaders, others) = loaders();
    assert_eq!(loaders.len(), 14, "{loaders:?}");
    assert_eq!(others, ["ir-ingest", "ir-notify", "ir-slack-endpoint"]);

    let invalid = put_parameter(&clients, &invalid_config(), ParameterType::SecureString).await;
    for binary in &loaders {
        let (ok, printed) = init(cloud, binary, &[("IR_CONFIG_SSM_PARAMETER", &invalid)]).await;
        assert!(!ok, "{binary}: {printed}");
        assert!(
            printed.contains(&format!("config ssm:{invalid}: config is invalid: "))
                && printed.contains("/triage/scoring/weights/severity"),
            "{binary}: {printed}"
        );
        assert!(!printed.contains("panicked"), "{binary}: {printed}");
    }

    // The state machines, and the overlay, at init too.
    let three = put_parameter(&clients, &three_levels_config(), ParameterType::String).await;
    let (ok, printed) = init(cloud, "ir-score", &[("IR_CONFIG_SSM_PARAMETER", &three)]).await;
    assert!(!ok, "{printed}");
    assert!(
        printed.contains(&format!(
            "config ssm:{three} needs state machines other than the deployed ones"
        )),
        "{printed}"
    );
    let good = put_parameter(&clients, &carol_config(), ParameterType::String).await;
    let (ok, printed) = init(
        cloud,
        "ir-decide-approval",
        &[
            ("IR_CONFIG_SSM_PARAMETER", &good),
            (
                "IR_APPROVERS_SECURITY_LEAD",
                "arn:aws:iam::123456789012:group/Leads",
            ),
        ],
    )
    .await;
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("environment variable IR_APPROVERS_SECURITY_LEAD: `arn:aws:iam::123456789012:group/Leads` is not an IAM role"),
        "{printed}"
    );
    // Two sources at once: refused, whichever they are.
    let (ok, printed) = init(
        cloud,
        "ir-record",
        &[
            ("IR_CONFIG_SSM_PARAMETER", &good),
            ("IR_CONFIG_FILE", "/etc/incident-response.yaml"),
        ],
    )
    .await;
    assert!(
        !ok && printed.contains("the config comes from one source"),
        "{printed}"
    );
    // A good config passes init: the function gets as far as polling a Runtime API that is not
    // there, and logs where its config came from and its hash, not what it holds.
    let (ok, printed) = init(cloud, "ir-score", &[("IR_CONFIG_SSM_PARAMETER", &good)]).await;
    assert!(!ok, "{printed}");
    let loaded = printed
        .lines()
        .find(|l| l.contains("config loaded"))
        .unwrap_or_else(|| panic!("no `config loaded` line: {printed}"));
    let line: serde_json::Value = serde_json::from_str(loaded)?;
    assert_eq!(line["fields"]["origin"], format!("ssm:{good}"), "{loaded}");
    assert_eq!(
        line["fields"]["sha256"],
        ir_tests::sha256_hex(carol_config().as_bytes()),
        "{loaded}"
    );
    assert!(
        !printed.contains("carol"),
        "config contents logged: {printed}"
    );
    Ok(())
}
