//! The whole suite offline: the emulator (moto, Step Functions executing the committed state
//! machines), `cargo lambda watch` serving the Lambda Invoke API, and the real function binaries
//! behind it, each running the real `lambda_runtime` and calling the emulator with the AWS SDK.
//!
//! ```text
//!  invoke(ir-ingest) ──► cargo lambda watch ◄── polls ── target/debug/ir-* (one process each,
//!        ▲                (Invoke + Runtime API)          N for ir-ingest)
//!        │                      ▲                               │ AWS SDK
//!        │                      │ lambda:invoke tasks           ▼
//!  the test / demo ───────► moto server: DynamoDB, S3, SNS, EC2, IAM, STS, Step Functions
//! ```
//!
//! [`Offline::start`] provisions what `template.yaml` deploys (the four tables, the Object Lock
//! evidence bucket, the topic, the state machines from `statemachines/` with every function
//! substitution filled with the binary name cargo lambda routes by), then starts the functions
//! with the environment the template gives them. The configuration is the embedded default with
//! the deployment's choices applied ([`Settings`]); its rendered state machines must equal the
//! committed files, so what runs here is what SAM deploys. The functions read it from a file in
//! the run dir (`IR_CONFIG_FILE`), or from an SSM parameter (`IR_CONFIG_SSM_PARAMETER`,
//! [`ConfigFrom::SsmParameter`]), with the deployment's overlay variables if the settings give
//! any (`IR_APPROVERS_<ROLE>`, `IR_PLAYBOOK_MODE_<PLAYBOOK>`).
//!
//! The function binaries are the workspace's debug builds (`cargo build --workspace --bins`);
//! a missing one is an error that says so.
//!
//! [`Served`] is the same serving for a few binaries alone, on a cloud and with an environment of
//! the caller's choosing: for a deployment whose config renders other state machines than the
//! committed ones (a step no default playbook has), which [`Offline::start`] refuses.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use ir_aws::store::{ApprovalStore, IncidentStore, TableNames, create_tables};
use ir_aws::{ClientOptions, Clients};
use ir_core::asl;
use ir_core::config::{DEFAULT_ASSETS_YAML, DEFAULT_CONFIG_YAML};
use ir_core::incident::Status;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::fault::{FaultProxy, FaultRule, KillHook};
use crate::localcloud::{ACCESS_KEY_ID, ACCOUNT_ID, LocalCloud, REGION, SECRET_ACCESS_KEY};
use crate::{repo_root, unique_name};

/// The bundled GuardDuty finding the story starts from.
pub const FINDING_FILE: &str = "events/guardduty-cryptocurrency-bitcointool-dns.json";

/// The playbook the story's incident is routed to.
pub const PLAYBOOK: &str = "immediate-isolation";

const CARGO_LAMBDA: &str = ".venv/bin/cargo-lambda";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// What goes wrong while running the suite offline: which step, and why.
#[derive(Debug, thiserror::Error)]
#[error("offline: {0}")]
pub struct OfflineError(pub String);

type Result<T> = std::result::Result<T, OfflineError>;

trait Context<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T>;
}

impl<T, E: std::fmt::Debug> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| OfflineError(format!("{what}: {e:?}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| OfflineError(format!("{what}: missing")))
    }
}

/// Who holds an escalation role, in the offline suite's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Every session of the engineers' role (alice's and bob's).
    EngineerRole,
    /// Every session of the lead's role (carol's).
    LeadRole,
    /// One person's session only: `"alice"`, `"bob"` or `"carol"`.
    Person(&'static str),
}

/// Where the functions read their configuration from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigFrom {
    /// The run dir's `incident-response.yaml` (`IR_CONFIG_FILE`).
    #[default]
    File,
    /// A SecureString SSM parameter `/<prefix>/config` (`IR_CONFIG_SSM_PARAMETER`), as a
    /// deployment with the template's `ConfigSsmParameter` has it.
    SsmParameter,
}

/// The fault proxies of a run: each of `binaries` reaches the emulator through a proxy of its
/// own, which records its calls; `rule` faults the calls of one of them. Faulted functions get
/// short SDK timeouts ([`FAULT_ATTEMPT_TIMEOUT`]), and a kill ends the invocation in flight as
/// Lambda ends it when its runtime exits (`Runtime.ExitError`).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub binaries: Vec<String>,
    /// The function whose calls get the rule, and the rule.
    pub rule: Option<(String, FaultRule)>,
}

/// The SDK attempt timeout of a function behind a fault proxy (the slow answer outlives it).
pub const FAULT_ATTEMPT_TIMEOUT: &str = "2";
/// Its operation timeout: three attempts and their backoff.
pub const FAULT_OPERATION_TIMEOUT: &str = "8";

/// The deployment's choices over the embedded configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Playbooks run in enforce mode (the default configuration is dry-run).
    pub enforce: Vec<String>,
    /// `notifications.escalation_matrix.<severity>[i].timeout` overrides, e.g. `("critical",
    /// vec!["2s", "2s"])`.
    pub escalation: Vec<(String, Vec<String>)>,
    /// `notifications.on_escalation_exhausted`.
    pub on_exhausted: Option<String>,
    /// `ir-ingest` processes polling for invocations (concurrent deliveries).
    pub ingest_instances: usize,
    /// `(playbook, step, on_failure)` overrides, e.g. `("immediate-isolation",
    /// "revoke-credentials", "continue")`.
    pub on_failure: Vec<(String, String, String)>,
    /// `orchestrator.max_concurrent_playbooks` and `queue_poll_seconds`.
    pub slots: Option<(u32, u32)>,
    /// Function binaries that reach the emulator each through a [`FaultProxy`] of its own.
    pub faults: Option<Faults>,
    /// `notifications.approver_roles`, lowest first: the engineers' role holds
    /// `security_engineer`, the lead's `security_lead`.
    pub approver_roles: Vec<(String, Vec<Holder>)>,
    /// Where the functions (and `ir`) read the configuration.
    pub config_from: ConfigFrom,
    /// The deployment's approvers parameters, as the template passes them:
    /// `IR_APPROVERS_<ROLE>` = the holders' ARNs.
    pub approvers_overlay: Vec<(String, Vec<Holder>)>,
    /// The deployment's mode parameters: `IR_PLAYBOOK_MODE_<PLAYBOOK>` = `dry-run`|`enforce`.
    pub mode_overlay: Vec<(String, String)>,
    /// Slack: a local Web API server, the app's secret (`IR_SLACK_SECRET_ARN`), the on-call
    /// people's Slack ids in `notifications.slack_approvers`, and the audit table's stream
    /// read into `ir-announce` ([`crate::chat`]).
    pub slack: bool,
    /// The config's `accounts` (the embedded default's otherwise: the security account only).
    pub accounts: Option<ir_core::accounts::Accounts>,
    /// Where the victim lives: `(account, region)` of a member account, where what
    /// `member-account.yaml` deploys is created first ([`crate::member`]); the suite's own
    /// account and region otherwise.
    pub victim_in: Option<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enforce: vec![PLAYBOOK.to_owned()],
            escalation: Vec::new(),
            on_exhausted: None,
            ingest_instances: 4,
            on_failure: Vec::new(),
            slots: None,
            faults: None,
            approver_roles: vec![
                ("security_engineer".to_owned(), vec![Holder::EngineerRole]),
                ("security_lead".to_owned(), vec![Holder::LeadRole]),
            ],
            config_from: ConfigFrom::File,
            approvers_overlay: Vec::new(),
            mode_overlay: Vec::new(),
            slack: false,
            accounts: None,
            victim_in: None,
        }
    }
}

/// A responder who approves: one person's session of an escalation role of the emulated account
/// (`AssumeRole` with the person's name as session name, so STS says who it is).
#[derive(Debug, Clone)]
pub struct Responder {
    /// The session ARN (`arn:aws:sts::ACCT:assumed-role/ROLE/NAME`).
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// The on-call people of the offline suite, as the config's `approver_roles` name them.
#[derive(Debug, Clone)]
pub struct Responders {
    /// alice, a security engineer.
    pub alice: Responder,
    /// bob, a security engineer.
    pub bob: Responder,
    /// carol, the security lead.
    pub carol: Responder,
    /// The engineers' role (`security_engineer`).
    pub engineer_role_arn: String,
    /// The lead's role (`security_lead`).
    pub lead_role_arn: String,
}

impl Responders {
    /// The ARN a holder stands for.
    pub fn arn_of(&self, holder: &Holder) -> Result<String> {
        Ok(match holder {
            Holder::EngineerRole => self.engineer_role_arn.clone(),
            Holder::LeadRole => self.lead_role_arn.clone(),
            Holder::Person("alice") => self.alice.arn.clone(),
            Holder::Person("bob") => self.bob.arn.clone(),
            Holder::Person("carol") => self.carol.arn.clone(),
            Holder::Person(other) => {
                return Err(OfflineError(format!("nobody called {other} is on call")));
            }
        })
    }

    fn arns_of(&self, holders: &[Holder]) -> Result<Vec<String>> {
        holders.iter().map(|h| self.arn_of(h)).collect()
    }
}

/// The suite running offline. Dropping it stops every process.
pub struct Offline {
    pub cloud: LocalCloud,
    pub clients: Clients,
    pub names: TableNames,
    pub bucket: String,
    pub topic_arn: String,
    /// The managed deny-all policy deny-principal attaches (`IR_DENY_POLICY_ARN`).
    pub deny_policy_arn: String,
    /// The key approval task tokens are sealed under (`IR_APPROVAL_TOKEN_KEY`).
    pub token_key_arn: String,
    /// State machine ARN by committed file name.
    pub machines: BTreeMap<String, String>,
    /// The first engineer on call (alice): the one who approves when one approval is enough.
    pub responder: Responder,
    pub people: Responders,
    /// The instance the story is about (in the asset registry as the sample's `web-prod-1`).
    pub victim: Victim,
    /// Clients acting where the victim is, as that account's own administrator (the suite's
    /// clients when it is in the suite's account): to read the victim back.
    pub victim_clients: Clients,
    /// The configuration, asset registry and function logs of this run.
    pub run_dir: PathBuf,
    pub config_file: PathBuf,
    /// The SSM parameter the functions read the configuration from ([`ConfigFrom::SsmParameter`]).
    pub config_parameter: Option<String>,
    /// The deployment's overlay variables every function is given.
    pub overlay: Vec<(String, String)>,
    pub assets_file: PathBuf,
    lambda_port: u16,
    /// The fault proxy each faulted function reaches the emulator through.
    pub fault_proxies: BTreeMap<String, FaultProxy>,
    bin_dir: PathBuf,
    _watch: Child,
    _functions: Vec<Child>,
    /// The processes of faulted functions, which a kill replaces.
    killable: BTreeMap<String, Arc<Mutex<KillSlot>>>,
    /// Slack, when [`Settings::slack`].
    pub slack: Option<crate::chat::Slack>,
    /// `IR_SLACK_SECRET_ARN` and `IR_SLACK_API_URL`, when [`Settings::slack`].
    slack_env: Option<(String, String)>,
}

/// The process of a faulted function and how many times it was started.
#[derive(Debug)]
struct KillSlot {
    child: Option<Child>,
    starts: usize,
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline")
            .field("emulator", &self.cloud.endpoint_url())
            .field("lambda", &self.lambda_endpoint())
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

/// The function binaries: one package per folder of `functions/`.
pub fn function_binaries() -> Result<Vec<String>> {
    let dir = repo_root().join("functions");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).ctx(format!("listing {}", dir.display()))? {
        let entry = entry.ctx("reading functions/")?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `IR_SUITE_PRINCIPALS` of the offline suite: a role per function, `role/ir-suite/<function>`.
pub fn suite_principals() -> String {
    function_binaries()
        .unwrap_or_default()
        .iter()
        .map(|f| format!("arn:aws:iam::{ACCOUNT_ID}:role/ir-suite/{f}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where the workspace's debug binaries are: next to this executable (a test executable is one
/// level down, in `deps/`).
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().ctx("locating this executable")?;
    let mut dir = exe.parent().ctx("the executable's folder")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").ctx("finding a free port")?;
    Ok(listener.local_addr().ctx("reading the bound port")?.port())
}

/// The configuration file for `settings` and its checks: it parses, and the state machines it
/// renders are the committed ones (only runtime values differ from the default).
fn configure(settings: &Settings, people: &Responders) -> Result<String> {
    use serde_yaml_ng::Value as Y;
    let mut doc: Y = serde_yaml_ng::from_str(DEFAULT_CONFIG_YAML).ctx("the embedded config")?;
    let playbooks = doc
        .get_mut("playbooks")
        .and_then(Y::as_sequence_mut)
        .ctx("config playbooks")?;
    for id in &settings.enforce {
        let p = playbooks
            .iter_mut()
            .find(|p| p.get("id").and_then(Y::as_str) == Some(id))
            .ctx(format!("playbook {id}"))?;
        p.as_mapping_mut()
            .ctx("playbook mapping")?
            .insert(Y::from("mode"), Y::from("enforce"));
    }
    for (playbook, step, value) in &settings.on_failure {
        let s = doc
            .get_mut("playbooks")
            .and_then(Y::as_sequence_mut)
            .and_then(|ps| {
                ps.iter_mut()
                    .find(|p| p.get("id").and_then(Y::as_str) == Some(playbook.as_str()))
            })
            .and_then(|p| p.get_mut("steps"))
            .and_then(Y::as_sequence_mut)
            .and_then(|ss| {
                ss.iter_mut()
                    .find(|s| s.get("id").and_then(Y::as_str) == Some(step.as_str()))
            })
            .and_then(Y::as_mapping_mut)
            .ctx(format!("step {step} of playbook {playbook}"))?;
        s.insert(Y::from("on_failure"), Y::from(value.as_str()));
    }
    if let Some((max, poll)) = settings.slots {
        let o = doc
            .get_mut("orchestrator")
            .and_then(Y::as_mapping_mut)
            .ctx("config orchestrator")?;
        o.insert(Y::from("max_concurrent_playbooks"), Y::from(max));
        o.insert(Y::from("queue_poll_seconds"), Y::from(poll));
    }
    let notifications = doc
        .get_mut("notifications")
        .and_then(Y::as_mapping_mut)
        .ctx("config notifications")?;
    let mut roles = Vec::new();
    for (id, holders) in &settings.approver_roles {
        let mut m = serde_yaml_ng::Mapping::new();
        m.insert(Y::from("role"), Y::from(id.as_str()));
        m.insert(
            Y::from("identities"),
            Y::Sequence(people.arns_of(holders)?.into_iter().map(Y::from).collect()),
        );
        roles.push(Y::Mapping(m));
    }
    notifications.insert(Y::from("approver_roles"), Y::Sequence(roles));
    if settings.slack {
        let mut users = serde_yaml_ng::Mapping::new();
        for (id, who) in [
            (crate::chat::ALICE, &people.alice),
            (crate::chat::BOB, &people.bob),
            (crate::chat::CAROL, &people.carol),
        ] {
            users.insert(Y::from(id), Y::from(who.arn.as_str()));
        }
        notifications.insert(Y::from("slack_approvers"), Y::Mapping(users));
    }
    if let Some(default) = &settings.on_exhausted {
        notifications.insert(
            Y::from("on_escalation_exhausted"),
            Y::from(default.as_str()),
        );
    }
    for (severity, timeouts) in &settings.escalation {
        let rows = notifications
            .get_mut("escalation_matrix")
            .and_then(|m| m.get_mut(severity.as_str()))
            .and_then(Y::as_sequence_mut)
            .ctx(format!("escalation_matrix.{severity}"))?;
        if rows.len() != timeouts.len() {
            return Err(OfflineError(format!(
                "escalation_matrix.{severity} has {} levels, {} timeouts given",
                rows.len(),
                timeouts.len()
            )));
        }
        for (row, timeout) in rows.iter_mut().zip(timeouts) {
            row.as_mapping_mut()
                .ctx("escalation row")?
                .insert(Y::from("timeout"), Y::from(timeout.as_str()));
        }
    }
    if let Some(accounts) = &settings.accounts {
        let value = serde_yaml_ng::to_value(accounts).ctx("the accounts section")?;
        doc.as_mapping_mut()
            .ctx("the config mapping")?
            .insert(Y::from("accounts"), value);
    }
    let text = serde_yaml_ng::to_string(&doc).ctx("writing the config")?;
    let config = ir_core::Config::from_yaml(&text).ctx("the derived config")?;
    for (file, rendered) in asl::render(&config) {
        let committed = committed_machine(&file)?;
        if committed != rendered {
            return Err(OfflineError(format!(
                "statemachines/{file} differs from what the offline config renders: the \
                 settings may only change values the state machines read at run time"
            )));
        }
    }
    Ok(text)
}

/// Puts `text` in the SecureString parameter `name` (advanced tier: the config with its comments
/// is larger than a standard parameter's 4 KB).
pub async fn put_config_parameter(clients: &Clients, name: &str, text: &str) -> Result<()> {
    clients
        .ssm()
        .put_parameter()
        .name(name)
        .value(text)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .tier(aws_sdk_ssm::types::ParameterTier::Advanced)
        .overwrite(true)
        .send()
        .await
        .ctx(format!("putting the config in {name}"))?;
    Ok(())
}

/// A committed state machine file, parsed.
pub fn committed_machine(file: &str) -> Result<Value> {
    let path = repo_root().join("statemachines").join(file);
    let text = std::fs::read_to_string(&path).ctx(format!("reading {}", path.display()))?;
    serde_json::from_str(&text).ctx(format!("parsing {}", path.display()))
}

impl Offline {
    /// Starts and provisions everything; see the module docs.
    ///
    /// # Errors
    /// A piece that cannot start or be provisioned, named.
    pub async fn start(settings: Settings) -> Result<Offline> {
        let bin_dir = bin_dir()?;
        let binaries = function_binaries()?;
        built(&bin_dir, binaries.iter().map(String::as_str).chain(["ir"]))?;
        let run_dir = new_run_dir()?;

        let lambda_port = free_port()?;
        let cloud = LocalCloud::builder()
            .lambda_endpoint(format!("http://127.0.0.1:{lambda_port}"))
            .start()
            .await
            .ctx("starting the emulator")?;
        let clients = Clients::new(
            &cloud.sdk_config(),
            ClientOptions {
                s3_force_path_style: true,
            },
        );

        // What the template deploys.
        let prefix = unique_name("ir");
        let names = TableNames::with_prefix(&prefix);
        create_tables(&clients, &names)
            .await
            .ctx("creating the tables")?;
        let bucket = format!("{prefix}-evidence");
        evidence_bucket(clients.s3(), &bucket).await?;
        let topic_arn = clients
            .sns()
            .create_topic()
            .name(format!("{prefix}-incident-updates"))
            .send()
            .await
            .ctx("creating the topic")?
            .topic_arn()
            .ctx("the topic ARN")?
            .to_owned();
        let deny_policy_arn = crate::fixtures::create_deny_policy(clients.iam()).await;
        let token_key_arn = aws_sdk_kms::Client::new(&cloud.sdk_config())
            .create_key()
            .description(format!("{prefix} approval task tokens"))
            .send()
            .await
            .ctx("creating the approval-token key")?
            .key_metadata()
            .ctx("the approval-token key")?
            .arn()
            .ctx("the approval-token key ARN")?
            .to_owned();
        let machines = state_machines(&clients, &prefix, &binaries).await?;
        let people = responders(&clients, &prefix).await?;
        let responder = people.alice.clone();
        let victim_clients = match &settings.victim_in {
            Some((account, region)) => {
                let member = crate::member::clients_in(&clients, account, region);
                crate::member::deploy_member_stack(&member)
                    .await
                    .map_err(OfflineError)?;
                member
            }
            None => clients.clone(),
        };
        let mut victim = Victim::create(&victim_clients, "victim").await?;
        if let Some((account, region)) = &settings.victim_in {
            victim.account.clone_from(account);
            victim.region.clone_from(region);
        }

        let config_text = configure(&settings, &people)?;
        let config_file = run_dir.join("incident-response.yaml");
        std::fs::write(&config_file, &config_text).ctx("writing the config")?;
        let config_parameter = match settings.config_from {
            ConfigFrom::File => None,
            ConfigFrom::SsmParameter => {
                let name = format!("/{prefix}/config");
                put_config_parameter(&clients, &name, &config_text).await?;
                Some(name)
            }
        };
        let mut overlay = Vec::new();
        for (role, holders) in &settings.approvers_overlay {
            overlay.push((
                ir_env::source::approvers_variable(role),
                people.arns_of(holders)?.join(","),
            ));
        }
        for (playbook, mode) in &settings.mode_overlay {
            overlay.push((
                ir_env::source::playbook_mode_variable(playbook),
                mode.clone(),
            ));
        }
        let assets_file = run_dir.join("assets.yaml");
        std::fs::write(&assets_file, victim.registry(DEFAULT_ASSETS_YAML))
            .ctx("writing the asset registry")?;

        let mut fault_proxies = BTreeMap::new();
        let faults = settings.faults.clone().unwrap_or_default();
        for binary in &faults.binaries {
            let rule = faults
                .rule
                .as_ref()
                .filter(|(f, _)| f == binary)
                .map(|(_, r)| r.clone());
            fault_proxies.insert(
                binary.clone(),
                FaultProxy::start(cloud.endpoint_url(), rule).await?,
            );
        }
        let slack = match settings.slack {
            true => Some(crate::chat::Slack::start(&clients, &prefix).await?),
            false => None,
        };
        let slack_env = slack
            .as_ref()
            .map(|(server, arn)| (arn.clone(), server.slack_api_url()));
        let watch = start_watch(&run_dir, lambda_port)?;
        let mut offline = Offline {
            cloud,
            clients,
            names,
            bucket,
            topic_arn,
            deny_policy_arn,
            token_key_arn,
            machines,
            responder,
            people,
            victim,
            victim_clients,
            run_dir,
            config_file,
            config_parameter,
            overlay,
            assets_file,
            lambda_port,
            fault_proxies,
            bin_dir,
            _watch: watch,
            _functions: Vec::new(),
            killable: BTreeMap::new(),
            slack: None,
            slack_env,
        };
        wait_for_lambda_api(&mut offline._watch, lambda_port, &offline.run_dir).await?;
        for binary in &binaries {
            let instances = if binary == "ir-ingest" {
                settings.ingest_instances.max(1)
            } else {
                1
            };
            for i in 0..instances {
                if offline.fault_proxies.contains_key(binary) {
                    offline.make_killable(binary).await?;
                } else {
                    let child = offline.spawn_function(binary, i)?;
                    offline._functions.push(child);
                }
            }
        }
        if let Some((server, arn)) = slack {
            offline.slack = Some(crate::chat::Slack::new(
                server,
                arn,
                &offline.clients,
                &offline.names.audit,
                offline.lambda_endpoint(),
            ));
        }
        Ok(offline)
    }

    /// The triage state machine's ARN.
    pub fn triage_arn(&self) -> &str {
        self.machines
            .get(asl::TRIAGE_FILE)
            .map_or("", String::as_str)
    }

    /// A playbook's state machine ARN.
    pub fn playbook_arn(&self, playbook_id: &str) -> &str {
        self.machines
            .get(&asl::playbook_file(playbook_id))
            .map_or("", String::as_str)
    }

    /// The Lambda Invoke API endpoint (cargo lambda).
    pub fn lambda_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.lambda_port)
    }

    /// The environment every function and the `ir` CLI get (the template's, for this cloud).
    pub fn environment(&self) -> Vec<(String, String)> {
        let ours = [
            ("IR_INCIDENTS_TABLE", self.names.incidents.clone()),
            ("IR_KEYS_TABLE", self.names.keys.clone()),
            ("IR_AUDIT_TABLE", self.names.audit.clone()),
            ("IR_APPROVALS_TABLE", self.names.approvals.clone()),
            ("IR_EVIDENCE_BUCKET", self.bucket.clone()),
            ("IR_NOTIFY_TOPIC_ARN", self.topic_arn.clone()),
            ("IR_DENY_POLICY_ARN", self.deny_policy_arn.clone()),
            ("IR_APPROVAL_TOKEN_KEY", self.token_key_arn.clone()),
            ("IR_TRIAGE_STATE_MACHINE_ARN", self.triage_arn().to_owned()),
            ("IR_ASSETS_FILE", self.assets_file.display().to_string()),
            // `ir approve|reject` invoke the decision function, served by cargo lambda.
            (
                "IR_DECIDE_APPROVAL_FUNCTION",
                "ir-decide-approval".to_owned(),
            ),
            ("AWS_ENDPOINT_URL_LAMBDA", self.lambda_endpoint()),
            // The Slack endpoint relays to the decision function.
            ("IR_DECIDE_FUNCTION", "ir-decide-approval".to_owned()),
            // The suite's own roles, by exact ARN, as the template names each function's role.
            ("IR_SUITE_PRINCIPALS", suite_principals()),
        ];
        let mut env = cloud_environment(&self.cloud);
        env.extend(ours.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.push(match &self.config_parameter {
            Some(name) => ("IR_CONFIG_SSM_PARAMETER".to_owned(), name.clone()),
            None => (
                "IR_CONFIG_FILE".to_owned(),
                self.config_file.display().to_string(),
            ),
        });
        env.extend(self.overlay.iter().cloned());
        if let Some((arn, url)) = &self.slack_env {
            env.push(("IR_SLACK_SECRET_ARN".to_owned(), arn.clone()));
            env.push(("IR_SLACK_API_URL".to_owned(), url.clone()));
        }
        env
    }

    /// The environment of `binary`: behind its fault proxy, if it has one, with short SDK
    /// timeouts.
    fn function_environment(&self, binary: &str) -> Vec<(String, String)> {
        let mut env = self.environment();
        if let Some(proxy) = self.fault_proxies.get(binary) {
            for (k, v) in &mut env {
                if k == "AWS_ENDPOINT_URL" {
                    *v = proxy.endpoint().to_owned();
                }
            }
            env.push((
                "IR_AWS_ATTEMPT_TIMEOUT_SECONDS".to_owned(),
                FAULT_ATTEMPT_TIMEOUT.to_owned(),
            ));
            env.push((
                "IR_AWS_OPERATION_TIMEOUT_SECONDS".to_owned(),
                FAULT_OPERATION_TIMEOUT.to_owned(),
            ));
        }
        env
    }

    fn spawn_function(&self, binary: &str, instance: usize) -> Result<Child> {
        spawn_function(
            &self.bin_dir,
            &self.run_dir,
            &self.lambda_endpoint(),
            &self.function_environment(binary),
            binary,
            instance,
        )
    }

    /// Starts `binary` behind a runtime relay ([`crate::relay::runtime_relay`]) and gives its
    /// proxy a kill hook: the hook kills the process (SIGKILL, as a crashed or out-of-memory
    /// sandbox ends), reports the invocation it was working on as `Runtime.ExitError` (as
    /// Lambda does), and starts a fresh process for the next invocation, as Lambda starts a new
    /// sandbox.
    async fn make_killable(&mut self, binary: &str) -> Result<()> {
        let lambda = self.lambda_endpoint();
        let (relay, in_flight) = crate::relay::runtime_relay(&lambda)
            .await
            .ctx(format!("the runtime relay of {binary}"))?;
        let (bin_dir, run_dir) = (self.bin_dir.clone(), self.run_dir.clone());
        let (env, name) = (self.function_environment(binary), binary.to_owned());
        let child = spawn_function(&bin_dir, &run_dir, &relay, &env, &name, 0)?;
        let slot = Arc::new(Mutex::new(KillSlot {
            child: Some(child),
            starts: 1,
        }));
        let hook_slot = Arc::clone(&slot);
        let hook: KillHook = Arc::new(move || {
            let Ok(mut s) = hook_slot.lock() else { return };
            if let Some(mut old) = s.child.take() {
                let _ = old.start_kill();
            }
            if let Some(id) = in_flight.lock().ok().and_then(|mut f| f.take()) {
                let (lambda, name) = (lambda.clone(), name.clone());
                tokio::spawn(async move {
                    let _ = crate::relay::report_exit(&lambda, &name, &id).await;
                });
            }
            s.starts += 1;
            s.child = spawn_function(&bin_dir, &run_dir, &relay, &env, &name, s.starts).ok();
        });
        if let Some(proxy) = self.fault_proxies.get(binary) {
            proxy.set_kill_hook(hook);
        }
        self.killable.insert(binary.to_owned(), slot);
        Ok(())
    }

    /// How many times a faulted function's process was started (1 + kills).
    pub fn starts(&self, binary: &str) -> usize {
        self.killable
            .get(binary)
            .and_then(|s| s.lock().ok().map(|s| s.starts))
            .unwrap_or(0)
    }

    /// Invokes a function as the Lambda service does (`POST
    /// /2015-03-31/functions/<name>/invocations` on cargo lambda).
    ///
    /// # Errors
    /// The connection failed; a function error is an [`Invocation`] with `error` set.
    pub async fn invoke(&self, function: &str, payload: &[u8]) -> Result<Invocation> {
        invoke_at(&self.lambda_endpoint(), function, payload).await
    }

    /// The incident, as stored.
    pub async fn incident(&self, incident_id: &str) -> Result<Option<ir_aws::store::Incident>> {
        IncidentStore::new(self.clients.clone(), self.names.clone())
            .get(incident_id)
            .await
            .ctx(format!("reading incident {incident_id}"))
    }

    /// Waits until the incident's status is one of `statuses`; returns the incident then.
    pub async fn wait_for_status(
        &self,
        incident_id: &str,
        statuses: &[ir_core::incident::Status],
        timeout: Duration,
    ) -> Result<ir_aws::store::Incident> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.incident(incident_id).await?;
            if let Some(i) = last
                .as_ref()
                .filter(|i| statuses.contains(&i.summary.status))
            {
                return Ok(i.clone());
            }
            if Instant::now() > deadline {
                return Err(OfflineError(format!(
                    "incident {incident_id} not {statuses:?} within {timeout:?} (it is {:?}); \
                     function logs in {}",
                    last.map(|i| i.summary.status),
                    self.run_dir.display()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the incident has a pending approval for `step_id` at `level`.
    pub async fn wait_for_approval(
        &self,
        incident_id: &str,
        step_id: &str,
        level: u32,
        timeout: Duration,
    ) -> Result<ir_aws::store::Approval> {
        let store = ApprovalStore::new(self.clients.clone(), self.names.clone());
        let deadline = Instant::now() + timeout;
        loop {
            let pending = store
                .pending(incident_id)
                .await
                .ctx("reading pending approvals")?;
            if let Some(a) = pending
                .into_iter()
                .find(|a| a.step_id == step_id && a.level == level)
            {
                return Ok(a);
            }
            if Instant::now() > deadline {
                return Err(OfflineError(format!(
                    "no approval request for {incident_id} step {step_id} level {level} within \
                     {timeout:?}; function logs in {}",
                    self.run_dir.display()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an execution is no longer running; returns its final status.
    pub async fn wait_for_execution(
        &self,
        execution_arn: &str,
        timeout: Duration,
    ) -> Result<ExecutionStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let described = self
                .clients
                .sfn()
                .describe_execution()
                .execution_arn(execution_arn)
                .send()
                .await;
            match described {
                Ok(d) if d.status() != &ExecutionStatus::Running => {
                    return Ok(d.status().clone());
                }
                // Not started yet (the triage starts the playbook a moment later).
                Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(_) => {
                    return Err(OfflineError(format!(
                        "{execution_arn} still RUNNING after {timeout:?}"
                    )));
                }
                Err(e) => {
                    return Err(OfflineError(format!(
                        "{execution_arn}: {:?}",
                        e.into_service_error()
                    )));
                }
            }
        }
    }

    /// The ARN of the execution named `name` of a state machine.
    pub fn execution_arn(&self, machine_arn: &str, name: &str) -> String {
        ir_incident::intake::execution_arn(machine_arn, name).unwrap_or_default()
    }

    /// `ir <args>` as the responder (alice; their credentials, this cloud's environment).
    pub async fn ir_as_responder(&self, args: &[&str]) -> Result<std::process::Output> {
        self.ir_as(&self.responder, args).await
    }

    /// `ir <args>` as `who` (their session's credentials, this cloud's environment).
    pub async fn ir_as(&self, who: &Responder, args: &[&str]) -> Result<std::process::Output> {
        let mut env = self.environment();
        for (k, v) in &mut env {
            if k == "AWS_ACCESS_KEY_ID" {
                v.clone_from(&who.access_key_id);
            } else if k == "AWS_SECRET_ACCESS_KEY" {
                v.clone_from(&who.secret_access_key);
            }
        }
        env.push(("AWS_SESSION_TOKEN".to_owned(), who.session_token.clone()));
        self.run_ir(env, args).await
    }

    /// `ir <args>` with the functions' credentials: an identity that is not an approver.
    pub async fn ir_as_non_approver(&self, args: &[&str]) -> Result<std::process::Output> {
        self.run_ir(self.environment(), args).await
    }

    async fn run_ir(
        &self,
        env: Vec<(String, String)>,
        args: &[&str],
    ) -> Result<std::process::Output> {
        Command::new(self.bin_dir.join("ir"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .await
            .ctx(format!("running ir {}", args.join(" ")))
    }

    /// Gives the victim `count` earlier incidents, resolved: findings of other ids about it,
    /// each ingested `days` apart before `now` and resolved the same day (the by-resource
    /// history enrichment counts).
    ///
    /// # Errors
    /// A store write failed.
    pub async fn seed_history(&self, count: u32, now: OffsetDateTime) -> Result<Vec<String>> {
        self.seed_history_for(&self.victim, count, now).await
    }

    /// [`Offline::seed_history`] of another victim (the victim's instance in another account,
    /// say).
    ///
    /// # Errors
    /// A store write failed.
    pub async fn seed_history_for(
        &self,
        victim: &Victim,
        count: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        let store = IncidentStore::new(self.clients.clone(), self.names.clone());
        let mut ids = Vec::new();
        for i in 1..=count {
            let at = now - time::Duration::days(7 * i64::from(i));
            let finding_id = format!("{:032x}", 0xe0_u128 + u128::from(i));
            let bytes = victim.finding(&finding_id, at, time::Duration::minutes(3))?;
            let normalized = ir_core::normalize(&bytes).ctx("an earlier finding")?;
            let event = normalized
                .events
                .first()
                .ctx("an earlier finding's event")?;
            let ingested = store
                .ingest(event, at)
                .await
                .ctx("ingesting an earlier finding")?;
            let id = ingested.incident.incident_id.clone();
            store
                .transition(
                    &id,
                    Status::Triage,
                    Status::Resolved,
                    at + time::Duration::hours(2),
                    ir_aws::store::IncidentPatch::default(),
                )
                .await
                .ctx("resolving an earlier incident")?;
            ids.push(id);
        }
        Ok(ids)
    }
}

/// What every function and the `ir` CLI need to reach `cloud`: its endpoint, region and
/// credentials, no instance metadata, path-style S3.
pub fn cloud_environment(cloud: &LocalCloud) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", cloud.endpoint_url().to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        // The template's: the security account is the emulator's default account.
        ("IR_SECURITY_ACCOUNT_ID", ACCOUNT_ID.to_owned()),
        ("IR_S3_FORCE_PATH_STYLE", "true".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Every one of `binaries` is built in `bin_dir`, or an error that says how to build them.
fn built<'a>(bin_dir: &Path, binaries: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for b in binaries {
        if !bin_dir.join(b).is_file() {
            return Err(OfflineError(format!(
                "{} is not built: run `cargo build --workspace --bins --tests --locked`",
                bin_dir.join(b).display()
            )));
        }
    }
    Ok(())
}

/// A fresh folder for one run's configuration and function logs.
fn new_run_dir() -> Result<PathBuf> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run_dir = std::env::temp_dir().join(format!(
        "ir-offline-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&run_dir).ctx(format!("creating {}", run_dir.display()))?;
    Ok(run_dir)
}

/// `cargo lambda watch` serving the Lambda Invoke and Runtime APIs on `lambda_port`.
fn start_watch(run_dir: &Path, lambda_port: u16) -> Result<Child> {
    Command::new(repo_root().join(CARGO_LAMBDA))
        .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
        .args(["-A", "127.0.0.1", "-P", &lambda_port.to_string()])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(log_file(run_dir, "cargo-lambda")?)
        .stderr(log_file(run_dir, "cargo-lambda")?)
        .kill_on_drop(true)
        .spawn()
        .ctx(format!(
            "starting {CARGO_LAMBDA} (run scripts/bootstrap-python to install it)"
        ))
}

/// Waits until `watch` listens on `lambda_port` (it failing, or a deadline, is an error).
async fn wait_for_lambda_api(watch: &mut Child, lambda_port: u16, run_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = format!("127.0.0.1:{lambda_port}");
    loop {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = watch.try_wait() {
            return Err(OfflineError(format!(
                "cargo lambda watch exited ({status}); see {}",
                run_dir.join("cargo-lambda.log").display()
            )));
        }
        if Instant::now() > deadline {
            return Err(OfflineError(format!(
                "cargo lambda watch did not listen on {addr} within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One process of `binary`, polling cargo lambda's runtime route for it, with `environment`.
fn spawn_function(
    bin_dir: &Path,
    run_dir: &Path,
    runtime_api: &str,
    environment: &[(String, String)],
    binary: &str,
    instance: usize,
) -> Result<Child> {
    let log = log_file(run_dir, &format!("{binary}-{instance}"))?;
    let err = log.try_clone().ctx("log file")?;
    Command::new(bin_dir.join(binary))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("{runtime_api}/.rt/{binary}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .ctx(format!("starting {binary}"))
}

/// Some of the suite's function binaries, each served by cargo lambda as the Lambda service
/// serves it, with an environment of the caller's choosing: for a deployment the whole
/// [`Offline`] suite cannot run (a config with a step no committed state machine has), tested by
/// invoking the function directly. Dropping it stops every process.
pub struct Served {
    /// The function logs of this run.
    pub run_dir: PathBuf,
    lambda_port: u16,
    _watch: Child,
    _functions: Vec<Child>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("lambda", &self.lambda_endpoint())
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// Serves one process of each of `binaries` (the workspace's debug builds), each given
    /// `environment` (see [`cloud_environment`]) and nothing else of this process's.
    ///
    /// # Errors
    /// A binary not built, or cargo lambda not starting.
    pub async fn start(binaries: &[&str], environment: &[(String, String)]) -> Result<Served> {
        let bin_dir = bin_dir()?;
        built(&bin_dir, binaries.iter().copied())?;
        let run_dir = new_run_dir()?;
        let lambda_port = free_port()?;
        let mut watch = start_watch(&run_dir, lambda_port)?;
        wait_for_lambda_api(&mut watch, lambda_port, &run_dir).await?;
        let mut functions = Vec::new();
        for binary in binaries {
            functions.push(spawn_function(
                &bin_dir,
                &run_dir,
                &format!("http://127.0.0.1:{lambda_port}"),
                environment,
                binary,
                0,
            )?);
        }
        Ok(Served {
            run_dir,
            lambda_port,
            _watch: watch,
            _functions: functions,
        })
    }

    /// The Lambda Invoke API endpoint (cargo lambda).
    pub fn lambda_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.lambda_port)
    }

    /// Invokes a served function as the Lambda service does (see [`invoke_at`]).
    ///
    /// # Errors
    /// The connection failed; a function error is an [`Invocation`] with `error` set.
    pub async fn invoke(&self, function: &str, payload: &[u8]) -> Result<Invocation> {
        invoke_at(&self.lambda_endpoint(), function, payload).await
    }
}

/// Invokes `function` on the Lambda Invoke API at `endpoint` (`http://host:port`), as the Lambda
/// service does for EventBridge: `POST /2015-03-31/functions/<name>/invocations`.
///
/// # Errors
/// The connection failed or the answer is not HTTP; a function error is an [`Invocation`] with
/// `error` set.
pub async fn invoke_at(endpoint: &str, function: &str, payload: &[u8]) -> Result<Invocation> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .ctx(format!("connecting to {addr}"))?;
    let head = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .ctx("sending an invocation")?;
    stream.write_all(payload).await.ctx("sending a payload")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .ctx("reading an invocation's answer")?;
    Invocation::parse(&raw)
}

/// One function invocation's answer.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    /// `X-Amz-Function-Error`, or the `errorType` of an error body.
    pub error: Option<String>,
    pub body: Value,
}

impl Invocation {
    fn parse(raw: &[u8]) -> Result<Invocation> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ctx("an HTTP answer from cargo lambda")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ctx(format!("the status of {head:?}"))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let body: Value = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        };
        let header_error = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-amz-function-error")
                .then(|| v.trim().to_owned())
        });
        // A function error is `{"errorType", "errorMessage"}` (the header says so when present).
        let body_error = body
            .get("errorType")
            .and_then(Value::as_str)
            .filter(|_| body.get("errorMessage").is_some())
            .map(str::to_owned);
        let error = body_error.or(header_error);
        Ok(Invocation {
            status,
            error,
            body,
        })
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn log_file(run_dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = run_dir.join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ctx(format!("opening {}", path.display()))
}

/// Creates `bucket` as the deployment creates the evidence bucket: Object Lock (hence
/// versioning) with default retention COMPLIANCE 1 day. Use a path-style client.
///
/// # Errors
/// S3 refused the bucket or its lock configuration.
pub async fn evidence_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    s3.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .ctx("creating the evidence bucket")?;
    s3.put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .ctx("locking the evidence bucket")?;
    Ok(())
}

/// Creates the committed state machines (playbooks first: the triage starts them), every
/// function substitution filled with its binary's name.
async fn state_machines(
    clients: &Clients,
    prefix: &str,
    binaries: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut values: BTreeMap<String, String> = binaries
        .iter()
        .map(|b| (asl::function_substitution(b), b.clone()))
        .collect();
    let mut files: Vec<String> = Vec::new();
    let dir = repo_root().join("statemachines");
    for entry in std::fs::read_dir(&dir).ctx(format!("listing {}", dir.display()))? {
        let name = entry
            .ctx("reading statemachines/")?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with(asl::PLAYBOOK_FILE_PREFIX) && name.ends_with(asl::FILE_SUFFIX) {
            files.push(name);
        }
    }
    files.sort();
    files.push(asl::TRIAGE_FILE.to_owned());
    let mut machines = BTreeMap::new();
    for file in files {
        let doc = committed_machine(&file)?;
        let definition = asl::substitute(&doc, &values).ctx(format!("statemachines/{file}"))?;
        let name = format!("{prefix}-{}", file.trim_end_matches(asl::FILE_SUFFIX));
        let arn = clients
            .sfn()
            .create_state_machine()
            .name(&name)
            .definition(definition.to_string())
            .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/ir-suite/{name}"))
            .send()
            .await
            .ctx(format!("creating state machine {name}"))?
            .state_machine_arn()
            .to_owned();
        if let Some(id) = file
            .strip_prefix(asl::PLAYBOOK_FILE_PREFIX)
            .and_then(|f| f.strip_suffix(asl::FILE_SUFFIX))
        {
            values.insert(asl::state_machine_substitution(id), arn.clone());
        }
        machines.insert(file, arn);
    }
    Ok(machines)
}

/// The escalation roles (`<prefix>-SecurityEngineer`, `<prefix>-SecurityLead`) and a session
/// of each person on call.
async fn responders(clients: &Clients, prefix: &str) -> Result<Responders> {
    let engineer_role_arn = responder_role(clients, &format!("{prefix}-SecurityEngineer")).await?;
    let lead_role_arn = responder_role(clients, &format!("{prefix}-SecurityLead")).await?;
    Ok(Responders {
        alice: session(clients, &engineer_role_arn, "alice").await?,
        bob: session(clients, &engineer_role_arn, "bob").await?,
        carol: session(clients, &lead_role_arn, "carol").await?,
        engineer_role_arn,
        lead_role_arn,
    })
}

/// A role the account's people assume.
async fn responder_role(clients: &Clients, name: &str) -> Result<String> {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_ID}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = clients
        .iam()
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .ctx(format!("creating role {name}"))?;
    Ok(role.role().ctx("the created role")?.arn().to_owned())
}

/// `person`'s session of `role_arn`.
pub async fn session(clients: &Clients, role_arn: &str, person: &str) -> Result<Responder> {
    let assumed = clients
        .sts()
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(person)
        .send()
        .await
        .ctx(format!("assuming {role_arn} as {person}"))?;
    let arn = assumed
        .assumed_role_user()
        .ctx("the assumed-role user")?
        .arn()
        .to_owned();
    let c = assumed.credentials().ctx("the session's credentials")?;
    Ok(Responder {
        arn,
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: c.secret_access_key().to_owned(),
        session_token: c.session_token().to_owned(),
    })
}

/// The production web server of the bundled samples, made real in the emulator: an instance
/// with two network interfaces (three security groups), an instance profile whose role has an
/// inline policy, and a root volume.
#[derive(Debug, Clone)]
pub struct Victim {
    pub vpc_id: String,
    pub subnet_id: String,
    pub instance_id: String,
    /// `(interface id, its security group ids)`, primary first.
    pub interfaces: Vec<(String, Vec<String>)>,
    pub groups: BTreeMap<String, String>,
    pub role: String,
    pub profile: String,
    pub profile_arn: String,
    /// The account and region the victim is in (the findings about it say so).
    pub account: String,
    pub region: String,
}

/// The sample's identities, in the order [`Victim::substitutions`] replaces them.
const SAMPLE_ACCOUNT: &str = "111122223333";
const SAMPLE_REGION: &str = "us-east-1";
const SAMPLE_INSTANCE: &str = "i-0a1b2c3d4e5f60001";
const SAMPLE_ENIS: [&str; 2] = ["eni-0a1b2c3d4e5f60011", "eni-0a1b2c3d4e5f60012"];
const SAMPLE_GROUPS: [(&str, &str); 3] = [
    ("sg-0a1b2c3d4e5f60301", "web-prod"),
    ("sg-0a1b2c3d4e5f60302", "ssh-admin"),
    ("sg-0a1b2c3d4e5f60303", "app-backend"),
];
const SAMPLE_SUBNET: &str = "subnet-0a1b2c3d4e5f60200";
const SAMPLE_VPC: &str = "vpc-0a1b2c3d4e5f60100";
const SAMPLE_ROLE: &str = "web-prod-instance-role";
const SAMPLE_PROFILE: &str = "web-prod-instance-profile";
const SAMPLE_FINDING_ID: &str = "d4b6f4f0e3c1a2b3c4d5e6f7a8b9c0d1";

const TRUST_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const APP_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::acme-customer-exports/*"}]}"#;

impl Victim {
    async fn create(clients: &Clients, tag: &str) -> Result<Victim> {
        let ec2 = &clients.ec2();
        let iam = &clients.iam();
        let suffix = unique_name(tag);
        let vpc_id = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .ctx("CreateVpc")?
            .vpc()
            .and_then(|v| v.vpc_id())
            .ctx("the VPC id")?
            .to_owned();
        let subnet_id = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.0.1.0/24")
            .send()
            .await
            .ctx("CreateSubnet")?
            .subnet()
            .and_then(|s| s.subnet_id())
            .ctx("the subnet id")?
            .to_owned();
        let mut groups = BTreeMap::new();
        for (sample_id, name) in SAMPLE_GROUPS {
            let id = ec2
                .create_security_group()
                .group_name(format!("{name}-{suffix}"))
                .description(format!("{name} tier"))
                .vpc_id(&vpc_id)
                .send()
                .await
                .ctx("CreateSecurityGroup")?
                .group_id()
                .ctx("the group id")?
                .to_owned();
            groups.insert(sample_id.to_owned(), id);
        }
        let role = format!("{SAMPLE_ROLE}-{suffix}");
        let profile = format!("{SAMPLE_PROFILE}-{suffix}");
        iam.create_role()
            .role_name(&role)
            .assume_role_policy_document(TRUST_EC2)
            .send()
            .await
            .ctx("CreateRole")?;
        iam.put_role_policy()
            .role_name(&role)
            .policy_name("app-data")
            .policy_document(APP_POLICY)
            .send()
            .await
            .ctx("PutRolePolicy")?;
        let profile_arn = iam
            .create_instance_profile()
            .instance_profile_name(&profile)
            .send()
            .await
            .ctx("CreateInstanceProfile")?
            .instance_profile()
            .ctx("the instance profile")?
            .arn()
            .to_owned();
        iam.add_role_to_instance_profile()
            .instance_profile_name(&profile)
            .role_name(&role)
            .send()
            .await
            .ctx("AddRoleToInstanceProfile")?;

        let group = |i: usize| groups.get(SAMPLE_GROUPS[i].0).cloned().unwrap_or_default();
        let primary_groups = vec![group(0), group(1)];
        let second_groups = vec![group(2)];
        let launched = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Large)
            .min_count(1)
            .max_count(1)
            .iam_instance_profile(
                aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                    .arn(&profile_arn)
                    .build(),
            )
            .network_interfaces(
                aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .subnet_id(&subnet_id)
                    .set_groups(Some(primary_groups.clone()))
                    .build(),
            )
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("Name")
                            .value("web-prod-1")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .ctx("RunInstances")?;
        let instance = launched.instances().first().ctx("the instance")?;
        let instance_id = instance.instance_id().ctx("the instance id")?.to_owned();
        let primary = instance
            .network_interfaces()
            .first()
            .and_then(|n| n.network_interface_id())
            .ctx("the primary interface")?
            .to_owned();
        let second = ec2
            .create_network_interface()
            .subnet_id(&subnet_id)
            .set_groups(Some(second_groups.clone()))
            .send()
            .await
            .ctx("CreateNetworkInterface")?
            .network_interface()
            .and_then(|n| n.network_interface_id())
            .ctx("the second interface")?
            .to_owned();
        ec2.attach_network_interface()
            .network_interface_id(&second)
            .instance_id(&instance_id)
            .device_index(1)
            .send()
            .await
            .ctx("AttachNetworkInterface")?;
        Ok(Victim {
            vpc_id,
            subnet_id,
            instance_id,
            interfaces: vec![(primary, primary_groups), (second, second_groups)],
            groups,
            role,
            profile,
            profile_arn,
            account: ACCOUNT_ID.to_owned(),
            region: REGION.to_owned(),
        })
    }

    /// Sample identity → this victim's, longest first (a role name is a prefix of nothing else,
    /// but the profile ARN contains the profile name).
    fn substitutions(&self, finding_id: &str) -> Vec<(String, String)> {
        let mut subs = vec![
            (SAMPLE_ACCOUNT.to_owned(), self.account.clone()),
            (SAMPLE_REGION.to_owned(), self.region.clone()),
            (SAMPLE_INSTANCE.to_owned(), self.instance_id.clone()),
            (SAMPLE_SUBNET.to_owned(), self.subnet_id.clone()),
            (SAMPLE_VPC.to_owned(), self.vpc_id.clone()),
            (SAMPLE_ROLE.to_owned(), self.role.clone()),
            (SAMPLE_PROFILE.to_owned(), self.profile.clone()),
            (SAMPLE_FINDING_ID.to_owned(), finding_id.to_owned()),
        ];
        for (sample, (eni, _)) in SAMPLE_ENIS.iter().zip(&self.interfaces) {
            subs.push(((*sample).to_owned(), eni.clone()));
        }
        for (sample, id) in &self.groups {
            subs.push((sample.clone(), id.clone()));
        }
        subs
    }

    /// The bundled GuardDuty finding ([`FINDING_FILE`]) about this victim: the sample's
    /// identities replaced by the victim's, the finding id `finding_id`, the activity first seen
    /// `dwell` before `now`, published and delivered at `now`.
    ///
    /// # Errors
    /// The bundled file is missing or not an envelope.
    pub fn finding(
        &self,
        finding_id: &str,
        now: OffsetDateTime,
        dwell: time::Duration,
    ) -> Result<Vec<u8>> {
        let path = repo_root().join(FINDING_FILE);
        let mut text = std::fs::read_to_string(&path).ctx(format!("reading {}", path.display()))?;
        for (from, to) in self.substitutions(finding_id) {
            text = text.replace(&from, &to);
        }
        let mut envelope: Value = serde_json::from_str(&text).ctx("parsing the finding")?;
        let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let seen = at(now - dwell);
        envelope["time"] = Value::String(at(now));
        let detail = &mut envelope["detail"];
        detail["createdAt"] = Value::String(at(now));
        detail["updatedAt"] = Value::String(at(now));
        detail["service"]["eventFirstSeen"] = Value::String(seen.clone());
        detail["service"]["eventLastSeen"] = Value::String(seen);
        serde_json::to_vec(&envelope).ctx("writing the finding")
    }

    /// The asset registry entry of the sample instance, for this victim: the bundled registry
    /// with the sample's identities replaced.
    pub fn registry(&self, registry_yaml: &str) -> String {
        let mut text = registry_yaml.to_owned();
        for (from, to) in self.substitutions(SAMPLE_FINDING_ID) {
            text = text.replace(&from, &to);
        }
        text
    }
}

/// The state the containment acts on, read back from the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VictimState {
    /// Security group ids by interface id.
    pub interface_groups: BTreeMap<String, Vec<String>>,
    /// Inline policy names of the instance role.
    pub role_policies: Vec<String>,
}

impl Victim {
    /// Reads what containment would change.
    ///
    /// # Errors
    /// A describe failed.
    pub async fn state(&self, clients: &Clients) -> Result<VictimState> {
        let mut interface_groups = BTreeMap::new();
        for (eni, _) in &self.interfaces {
            let out = clients
                .ec2()
                .describe_network_interfaces()
                .network_interface_ids(eni)
                .send()
                .await
                .ctx("DescribeNetworkInterfaces")?;
            let mut groups: Vec<String> = out
                .network_interfaces()
                .iter()
                .flat_map(|n| n.groups())
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect();
            groups.sort();
            interface_groups.insert(eni.clone(), groups);
        }
        Ok(VictimState {
            interface_groups,
            role_policies: self.role_policies(clients).await?,
        })
    }

    /// The inline policy names of the instance role, sorted (readable once the instance is gone).
    ///
    /// # Errors
    /// ListRolePolicies failed.
    pub async fn role_policies(&self, clients: &Clients) -> Result<Vec<String>> {
        let mut names = clients
            .iam()
            .list_role_policies()
            .role_name(&self.role)
            .send()
            .await
            .ctx("ListRolePolicies")?
            .policy_names()
            .to_vec();
        names.sort();
        Ok(names)
    }
}
