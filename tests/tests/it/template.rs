//! `template.yaml` against the code it deploys: one function per package under its own role,
//! every state machine file with every `${…}` substitution filled and a role that may invoke
//! exactly what the file names, the tables exactly as `ir_aws::store::schema` defines them, the
//! findings rules with their retries and dead-letter queue, and every role the suite's.
//!
//! Plain tests: the template is parsed (CloudFormation's short tags `!Ref`, `!GetAtt`, `!Sub`, …
//! become their long forms), nothing is deployed and no emulator runs.

// Test helpers fail loudly by panicking.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use ir_aws::store::schema::{self, AttrType, KeyAttr};
use ir_core::asl;
use ir_core::normalize::{
    GUARDDUTY_DETAIL_TYPE, GUARDDUTY_SOURCE, SECURITYHUB_DETAIL_TYPE, SECURITYHUB_OCSF_DETAIL_TYPE,
    SECURITYHUB_SOURCE,
};
use serde_json::{Map, Value, json};

pub(crate) const FUNCTION: &str = "AWS::Serverless::Function";
const STATE_MACHINE: &str = "AWS::Serverless::StateMachine";
pub(crate) const ROLE: &str = "AWS::IAM::Role";
const MANAGED_POLICY: &str = "AWS::IAM::ManagedPolicy";
const TABLE: &str = "AWS::DynamoDB::Table";
const RULE: &str = "AWS::Events::Rule";
const QUEUE: &str = "AWS::SQS::Queue";
const SUITE_PATH: &str = "/ir-suite/";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------------------
// The template as JSON.

/// A short-form tag as its long form: `!Ref X` → `{"Ref": "X"}`, `!GetAtt X.Arn` →
/// `{"Fn::GetAtt": ["X", "Arn"]}`, `!Sub s` → `{"Fn::Sub": s}`, and so on.
fn intrinsic(tag: &str, value: Value) -> Value {
    let name = tag.trim_start_matches('!');
    let (key, value) = match name {
        "Ref" | "Condition" => (name.to_owned(), value),
        "GetAtt" => {
            let value = match value {
                Value::String(s) => match s.split_once('.') {
                    Some((resource, attribute)) => json!([resource, attribute]),
                    None => Value::String(s),
                },
                other => other,
            };
            ("Fn::GetAtt".to_owned(), value)
        }
        _ => (format!("Fn::{name}"), value),
    };
    Value::Object(Map::from_iter([(key, value)]))
}

fn to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            intrinsic(&tag, to_json(t.value))
        }
    }
}

/// A template of the repository as JSON, its short-form tags in their long form.
fn load(file: &str) -> Value {
    let path = repo().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    to_json(yaml)
}

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| load("template.yaml"))
}

fn resources() -> &'static Map<String, Value> {
    template()["Resources"].as_object().unwrap()
}

fn resource(logical_id: &str) -> &'static Value {
    resources()
        .get(logical_id)
        .unwrap_or_else(|| panic!("no resource {logical_id}"))
}

fn type_of(logical_id: &str) -> &'static str {
    resource(logical_id)["Type"].as_str().unwrap()
}

/// Every resource of a type, by logical id.
pub(crate) fn of_type(kind: &str) -> Vec<(&'static str, &'static Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

fn get_att(logical_id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [logical_id, attribute] })
}

fn reference(logical_id: &str) -> Value {
    json!({ "Ref": logical_id })
}

/// The logical id a `!Ref X` or `!GetAtt X.attribute` names.
fn target(v: &Value) -> Option<&str> {
    v.get("Ref")
        .and_then(Value::as_str)
        .or_else(|| v.get("Fn::GetAtt").and_then(|a| a[0].as_str()))
}

/// A value that may be one item or a list of them, as a list.
pub(crate) fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Roles and their policies.

/// The logical id of the role a function or state machine runs under (`Role: !GetAtt R.Arn`).
fn role_of(owner: &str) -> &'static str {
    let role = &resource(owner)["Properties"]["Role"];
    assert_eq!(
        role.get("Fn::GetAtt").and_then(|a| a[1].as_str()),
        Some("Arn"),
        "{owner}: Role must be !GetAtt <Role>.Arn, is {role}"
    );
    let id = target(role).unwrap();
    assert_eq!(type_of(id), ROLE, "{owner}: {id} is not an IAM role");
    id
}

/// The statements of a policy document, both branches of an `!If` included.
fn document_statements(document: &'static Value, out: &mut Vec<&'static Value>) {
    fn push(s: &'static Value, out: &mut Vec<&'static Value>) {
        if let Some(branches) = s.get("Fn::If").and_then(Value::as_array) {
            for b in branches.iter().skip(1) {
                if b.get("Ref") != Some(&json!("AWS::NoValue")) {
                    push(b, out);
                }
            }
        } else {
            out.push(s);
        }
    }
    for s in items(&document["Statement"]) {
        push(s, out);
    }
}

/// A role's inline policies, a policy under `!If` (one only some deployments have) included as
/// the policy it is when its condition holds.
fn inline_policies(role: &str) -> Vec<&'static Value> {
    items(&resource(role)["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| match p.get("Fn::If").and_then(Value::as_array) {
            Some(branches) => branches
                .iter()
                .skip(1)
                .filter(|b| b.get("Ref") != Some(&json!("AWS::NoValue")))
                .collect(),
            None => vec![p],
        })
        .collect()
}

/// Every statement a role carries: its inline policies and the suite's managed policies it
/// attaches (AWS managed policies, referenced by ARN, are left out).
pub(crate) fn role_statements(role: &str) -> Vec<&'static Value> {
    let props = &resource(role)["Properties"];
    let mut out = Vec::new();
    for policy in inline_policies(role) {
        document_statements(&policy["PolicyDocument"], &mut out);
    }
    for arn in items(&props["ManagedPolicyArns"]) {
        if let Some(id) = arn.get("Ref").and_then(Value::as_str) {
            assert_eq!(type_of(id), MANAGED_POLICY, "{role}: {id}");
            document_statements(&resource(id)["Properties"]["PolicyDocument"], &mut out);
        }
    }
    out
}

/// The resources a role allows `action` on (exact action names).
fn allowed(role: &str, action: &str) -> BTreeSet<String> {
    role_statements(role)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| items(&s["Action"]).iter().any(|a| *a == action))
        .flat_map(|s| items(&s["Resource"]))
        .map(canonical)
        .collect()
}

fn trusted_service(role: &str) -> String {
    let trust = &resource(role)["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    let statements = items(trust);
    assert_eq!(statements.len(), 1, "{role}: one trust statement");
    statements[0]["Principal"]["Service"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Functions.

/// Every package under `functions/` (folder = package = binary name).
fn packages() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

pub(crate) fn binary_of(function: &Value) -> Option<&str> {
    function["Metadata"]["BuildProperties"]["Binary"].as_str()
}

/// The logical id of the function built from `package`.
fn function_of(package: &str) -> &'static str {
    let found: Vec<&str> = of_type(FUNCTION)
        .into_iter()
        .filter(|(_, f)| binary_of(f) == Some(package))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{package}: functions whose Binary it is: {found:?}"
    );
    found[0]
}

/// A function's `IR_*` environment variables and their values.
fn ir_variables(function: &str) -> BTreeMap<String, Value> {
    resource(function)["Properties"]["Environment"]["Variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .filter(|(k, _)| k.starts_with("IR_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The text of every `.rs` file under `dir`.
fn sources(dir: &std::path::Path) -> String {
    let mut text = String::new();
    if dir.is_file() {
        return std::fs::read_to_string(dir).unwrap();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            text.push_str(&sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    text
}

/// Every `"IR_…"` string literal in `text`; with `call`, only those passed to `call(`.
fn literals(text: &str, call: Option<&str>) -> BTreeSet<String> {
    let opener = match call {
        Some(c) => format!("{c}(\"IR_"),
        None => "\"IR_".to_owned(),
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(&opener) {
        let after = &rest[at + opener.len() - 3..];
        if let Some(end) = after.find('"') {
            out.insert(after[..end].to_owned());
        }
        rest = &rest[at + opener.len()..];
    }
    out
}

/// The `ir_aws` modules a function's code names (`ir_actions::evidence::…` → `evidence`).
/// The suite modules a function's code names (`ir_actions::evidence::…` is
/// `shared/ir-actions/src/evidence`), as source directories or files to read.
fn suite_modules(text: &str) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for krate in ["ir_aws", "ir_actions", "ir_incident", "ir_lambda"] {
        let prefix = format!("{krate}::");
        let dir = repo()
            .join("shared")
            .join(krate.replace('_', "-"))
            .join("src");
        let mut rest = text;
        while let Some(at) = rest.find(&prefix) {
            rest = &rest[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if krate == "ir_lambda" && name == "env" {
                // A re-export of the ir-env crate.
                out.insert(repo().join("shared/ir-env/src"));
            } else if rest[name.len()..].starts_with("::") {
                out.insert(dir.join(&name));
                out.insert(dir.join(format!("{name}.rs")));
            }
        }
    }
    out
}

#[test]
fn every_function_package_is_one_function_under_its_own_role() {
    let packages = packages();
    let globals = &template()["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");

    let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
    for package in &packages {
        let id = function_of(package);
        let f = resource(id);
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
        let role = role_of(id);
        if let Some(other) = roles.insert(role, id) {
            panic!("{id} and {other} share the role {role}");
        }
        assert_eq!(trusted_service(role), "lambda.amazonaws.com", "{role}");
    }
    for (id, f) in of_type(FUNCTION) {
        let binary = binary_of(f).unwrap_or_else(|| panic!("{id}: no BuildProperties.Binary"));
        assert!(
            packages.iter().any(|p| p == binary),
            "{id} builds {binary}, which is not a package under functions/"
        );
    }
}

#[test]
fn every_function_gets_the_variables_its_code_reads() {
    let table_vars: BTreeSet<String> = schema::TABLES
        .iter()
        .map(|t| t.env_var.to_owned())
        .collect();
    for package in packages() {
        let id = function_of(&package);
        let own = sources(&repo().join("functions").join(&package).join("src"));
        let mut required = literals(&own, Some("required"));
        // The action guard reads the four tables (`Guard::from_env` is `TableNames::from_env`).
        let tables = own.contains("TableNames::from_env") || own.contains("Guard::from_env");
        if tables {
            required.extend(table_vars.iter().cloned());
        }
        // What the function may be given: what its code or the suite modules it uses name.
        let mut known = literals(&own, None);
        if tables {
            known.extend(table_vars.iter().cloned());
        }
        // The action guard acts where the resource is (ir_aws::member): the security account.
        if own.contains("Guard::from_env") {
            required.insert("IR_SECURITY_ACCOUNT_ID".to_owned());
            known.extend(literals(
                &sources(&repo().join("shared/ir-aws/src/member.rs")),
                None,
            ));
        }
        for module in suite_modules(&own) {
            known.extend(literals(&sources(&module), None));
        }
        // The config's source and overlay (ir_env::source, which ir_aws::config_source reads
        // them with; the overlay variables are named after the config's roles and playbooks).
        if reads_the_config(&own) {
            known.extend(literals(
                &sources(&repo().join("shared/ir-env/src/source.rs")),
                None,
            ));
        }
        // The SDK call timeouts every function's clients take (ir_aws::clients::Timeouts).
        if own.contains("Clients::from_env") {
            known.extend(literals(
                &sources(&repo().join("shared/ir-aws/src/clients.rs")),
                None,
            ));
        }
        let given: BTreeSet<String> = ir_variables(id).into_keys().collect();
        let missing: Vec<&String> = required.difference(&given).collect();
        assert!(missing.is_empty(), "{id} ({package}) lacks {missing:?}");
        known.extend(set_ahead_of_code(&package));
        let unknown: Vec<&String> = given
            .difference(&known)
            .filter(|v| !(reads_the_config(&own) && is_overlay_variable(v)))
            .collect();
        assert!(
            unknown.is_empty(),
            "{id} ({package}) is given {unknown:?}, which its code does not read"
        );
    }

    // The values are the resources they name.
    for (id, _) in of_type(FUNCTION) {
        for (name, value) in ir_variables(id) {
            let expected_type = match name.as_str() {
                "IR_TRIAGE_STATE_MACHINE_ARN" => {
                    let sm = target(&value).unwrap();
                    assert_eq!(value, reference(sm), "{id} {name}");
                    assert_eq!(
                        resource(sm)["Properties"]["DefinitionUri"],
                        format!("statemachines/{}", asl::TRIAGE_FILE),
                        "{id} {name}"
                    );
                    STATE_MACHINE
                }
                "IR_NOTIFY_TOPIC_ARN" => "AWS::SNS::Topic",
                "IR_EVIDENCE_BUCKET" => "AWS::S3::Bucket",
                "IR_SUITE_PRINCIPALS" => {
                    let text = value["Fn::Sub"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{value}"));
                    let given: BTreeSet<String> = text.split(',').map(str::to_owned).collect();
                    assert_eq!(given, suite_principals(), "{id} {name}: every suite role");
                    continue;
                }
                "IR_DENY_POLICY_ARN" => MANAGED_POLICY,
                "IR_APPROVAL_TOKEN_KEY" => {
                    assert_eq!(value, get_att("ApprovalTokenKey", "Arn"), "{id} {name}");
                    assert_eq!(type_of("ApprovalTokenKey"), "AWS::KMS::Key");
                    continue;
                }
                "IR_TRAIL_BUCKET" => continue,
                "IR_SECURITY_ACCOUNT_ID" => {
                    assert_eq!(value, json!({"Ref": "AWS::AccountId"}), "{id} {name}");
                    continue;
                }
                // Seconds, within the function's own timeout.
                "IR_AWS_ATTEMPT_TIMEOUT_SECONDS" | "IR_AWS_OPERATION_TIMEOUT_SECONDS" => {
                    let seconds: u64 = value.as_str().unwrap().parse().unwrap();
                    let timeout = resource(id)["Properties"]["Timeout"]
                        .as_u64()
                        .or(template()["Globals"]["Function"]["Timeout"].as_u64())
                        .unwrap();
                    assert!(
                        seconds < timeout,
                        "{id} {name}: {seconds} s, timeout {timeout} s"
                    );
                    continue;
                }
                // The Slack endpoint relays to the decision function, and only to it.
                "IR_DECIDE_FUNCTION" => {
                    assert_eq!(
                        value,
                        get_att("DecideApprovalFunction", "Arn"),
                        "{id} {name}"
                    );
                    continue;
                }
                // The deployment's own secrets: notify_reads_only_the_chat_secrets_it_is_given.
                "IR_SLACK_SECRET_ARN" | "IR_JIRA_SECRET_ARN" | "IR_JIRA_ISSUE_TYPE" => continue,
                // The config's parameters: every_config_reader_gets_the_parameter_its_overlay_and_only_that_read.
                ir_env::source::SSM_PARAMETER_VAR => continue,
                n if is_overlay_variable(n) => continue,
                n if table_vars.contains(n) => TABLE,
                other => panic!("{id}: no check for {other}"),
            };
            let named = target(&value).unwrap_or_else(|| panic!("{id} {name}: {value}"));
            assert_eq!(value, reference(named), "{id} {name}");
            assert_eq!(type_of(named), expected_type, "{id} {name}");
        }
    }
}

/// Variables the template sets that the function's code does not read: the decision function
/// opens sealed tokens with KMS `Decrypt`, which needs no key id (the ciphertext names its key);
/// it is given the key's ARN so its role and its environment name the same key.
fn set_ahead_of_code(package: &str) -> Vec<String> {
    if package == "ir-decide-approval" {
        vec!["IR_APPROVAL_TOKEN_KEY".to_owned()]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment's config: where it is read from, and the approvers and modes applied over it.

/// Whether a function's code loads the deployment's config (`ir_aws::config_source`).
fn reads_the_config(code: &str) -> bool {
    code.contains("ir_aws::config_source::")
}

/// `IR_APPROVERS_<ROLE>` or `IR_PLAYBOOK_MODE_<PLAYBOOK>`.
fn is_overlay_variable(name: &str) -> bool {
    name.starts_with(ir_env::source::APPROVERS_PREFIX)
        || name.starts_with(ir_env::source::PLAYBOOK_MODE_PREFIX)
}

/// A parameter's name part for an id of the config: `security_engineer` → `SecurityEngineer`,
/// `immediate-isolation` → `ImmediateIsolation`.
fn camel(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `!If [<condition>, !Ref <parameter>, !Ref AWS::NoValue]`: the variable only when it is set.
fn when_set(condition: &str, parameter: &str) -> Value {
    json!({"Fn::If": [condition, reference(parameter), reference("AWS::NoValue")]})
}

/// `condition` holds exactly when `parameter` is not empty.
fn assert_set_condition(condition: &str, parameter: &str) {
    assert_eq!(
        template()["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [reference(parameter), ""]}]}),
        "{condition}"
    );
}

/// The parameters are named after the embedded config's escalation roles and playbooks; every
/// function that loads the config (and no other) is given the SSM parameter's name only when
/// it is set, each approvers variable only when set, each playbook's mode, and its role may read
/// exactly that parameter, decrypting it only through SSM, only when it is set.
#[test]
fn every_config_reader_gets_the_parameter_its_overlay_and_only_that_read() {
    use ir_env::source::{Overlay, SSM_PARAMETER_VAR, approvers_variable, playbook_mode_variable};

    let config = ir_core::config::Config::embedded().unwrap();
    let roles: Vec<&str> = config
        .notifications
        .approver_roles
        .iter()
        .map(|r| r.role.as_str())
        .collect();
    let playbooks: Vec<&str> = config.playbooks.iter().map(|p| p.id.as_str()).collect();
    assert!(!roles.is_empty() && !playbooks.is_empty());

    // The parameters: the source, one per escalation role, one per playbook, and no other.
    let parameters = template()["Parameters"].as_object().unwrap();
    let source = &parameters["ConfigSsmParameter"];
    assert_eq!(
        (&source["Type"], &source["Default"]),
        (&json!("String"), &json!(""))
    );
    // A name starting with `/`: the ARN below is `…:parameter` followed by the name.
    assert!(
        source["AllowedPattern"]
            .as_str()
            .is_some_and(|p| p.starts_with("^$|^/")),
        "{source}"
    );
    assert_set_condition("HasConfigParameter", "ConfigSsmParameter");
    let named = |prefix: &str| -> BTreeSet<String> {
        parameters
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    };
    let mut wanted = BTreeMap::from([(
        SSM_PARAMETER_VAR.to_owned(),
        when_set("HasConfigParameter", "ConfigSsmParameter"),
    )]);
    let mut approvers = BTreeSet::new();
    for role in &roles {
        let parameter = format!("Approvers{}", camel(role));
        let p = &parameters[&parameter];
        assert_eq!(
            (&p["Type"], &p["Default"]),
            (&json!("String"), &json!("")),
            "{parameter}"
        );
        let condition = format!("Has{parameter}");
        assert_set_condition(&condition, &parameter);
        wanted.insert(approvers_variable(role), when_set(&condition, &parameter));
        approvers.insert(parameter);
    }
    assert_eq!(named("Approvers"), approvers, "one per escalation role");
    let mut modes = BTreeSet::new();
    for playbook in &playbooks {
        let parameter = format!("PlaybookMode{}", camel(playbook));
        let p = &parameters[&parameter];
        assert_eq!(p["Default"], "dry-run", "{parameter}");
        assert_eq!(
            p["AllowedValues"],
            json!(["dry-run", "enforce"]),
            "{parameter}"
        );
        wanted.insert(playbook_mode_variable(playbook), reference(&parameter));
        modes.insert(parameter);
    }
    assert_eq!(named("PlaybookMode"), modes, "one per playbook");

    // The code takes those variables, with values the parameters allow, over the embedded config.
    let responders = "arn:aws:iam::111122223333:role/Responders";
    for mode in ["dry-run", "enforce"] {
        let vars = wanted.keys().filter(|v| is_overlay_variable(v)).map(|v| {
            let value = if v.starts_with(ir_env::source::APPROVERS_PREFIX) {
                responders
            } else {
                mode
            };
            (v.clone(), value.to_owned())
        });
        let overlay = Overlay::from_vars(vars).unwrap();
        let overlaid = ir_env::source::embedded_config(&overlay)
            .unwrap_or_else(|e| panic!("the template's variables over the embedded config: {e}"));
        for r in &overlaid.notifications.approver_roles {
            assert_eq!(r.identities, [responders], "{}", r.role);
        }
        for p in &overlaid.playbooks {
            assert_eq!(p.mode.map(|m| m.as_str()), Some(mode), "{}", p.id);
        }
    }

    // The functions: every one that loads the config is given exactly those, no other any.
    let parameter_arn = sub(
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ConfigSsmParameter}",
    );
    let mut readers = BTreeSet::new();
    for package in packages() {
        let id = function_of(&package);
        let code = sources(&repo().join("functions").join(&package).join("src"));
        let given: BTreeMap<String, Value> = ir_variables(id)
            .into_iter()
            .filter(|(k, _)| k.starts_with("IR_CONFIG_") || is_overlay_variable(k))
            .collect();
        let role = role_of(id);
        let conditional: Vec<&Value> = items(&resource(role)["Properties"]["Policies"])
            .into_iter()
            .filter(|p| p["Fn::If"][1]["PolicyName"] == "config")
            .collect();
        if !reads_the_config(&code) {
            assert!(given.is_empty(), "{id} reads no config: {given:?}");
            assert!(conditional.is_empty(), "{role}");
            assert!(allowing(role, "ssm:GetParameter").is_empty(), "{role}");
            continue;
        }
        readers.insert(package.clone());
        assert_eq!(given, wanted, "{id} ({package})");
        assert_eq!(conditional.len(), 1, "{role}: one config policy");
        let branches = &conditional[0]["Fn::If"];
        assert_eq!(branches[0], "HasConfigParameter", "{role}");
        assert_eq!(branches[2], reference("AWS::NoValue"), "{role}");
        assert_eq!(
            items(&branches[1]["PolicyDocument"]["Statement"]),
            [
                &json!({
                    "Sid": "ReadConfigParameter",
                    "Effect": "Allow",
                    "Action": "ssm:GetParameter",
                    "Resource": parameter_arn,
                }),
                &json!({
                    "Sid": "DecryptConfigParameter",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": sub("arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"),
                    "Condition": {"StringEquals": {
                        "kms:ViaService": sub("ssm.${AWS::Region}.amazonaws.com"),
                        "kms:EncryptionContext:PARAMETER_ARN": parameter_arn,
                    }},
                }),
            ],
            "{role}"
        );
        assert_eq!(
            allowed(role, "ssm:GetParameter"),
            BTreeSet::from([canonical(&parameter_arn)]),
            "{role}: that parameter only"
        );
    }
    // Every function but ingest (findings in), notify (the message it is given) and the Slack
    // endpoint (it relays, the decision function decides) loads it.
    let all: BTreeSet<String> = packages().into_iter().collect();
    let others: BTreeSet<&str> = all
        .iter()
        .filter(|p| !readers.contains(*p))
        .map(String::as_str)
        .collect();
    assert_eq!(
        others,
        BTreeSet::from(["ir-ingest", "ir-notify", "ir-slack-endpoint"])
    );
    // No other role reads a parameter (the state machines' included).
    let reader_roles: BTreeSet<&str> = readers.iter().map(|p| role_of(function_of(p))).collect();
    for (role, _) in of_type(ROLE) {
        if !reader_roles.contains(role) {
            assert!(allowing(role, "ssm:GetParameter").is_empty(), "{role}");
        }
    }
}

/// One public address, and only with Slack configured: the Slack endpoint's Function URL
/// (`AuthType: NONE`: Slack cannot sign AWS requests), whose role may only invoke the decision
/// function, which verifies Slack's signature.
#[test]
fn only_the_slack_endpoint_has_a_url_and_it_can_only_relay_to_the_decision_function() {
    let decide = function_of("ir-decide-approval");
    let endpoint = function_of("ir-slack-endpoint");
    for (id, f) in of_type(FUNCTION) {
        if id == endpoint {
            assert_eq!(f["Condition"], "HasSlackSecret");
            assert_eq!(
                f["Properties"]["FunctionUrlConfig"],
                json!({"AuthType": "NONE"})
            );
            assert!(
                f["Properties"]["ReservedConcurrentExecutions"]
                    .as_u64()
                    .is_some()
            );
        } else {
            assert!(f["Properties"]["FunctionUrlConfig"].is_null(), "{id}");
        }
    }
    assert!(of_type("AWS::Lambda::Url").is_empty());
    let role = role_of(endpoint);
    let statements: Vec<_> = role_statements(role)
        .into_iter()
        .filter(|s| !s.to_string().contains("logs:"))
        .collect();
    assert_eq!(statements.len(), 1, "{role}: {statements:?}");
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(statements[0]["Resource"], get_att(decide, "Arn"));
    let outputs = template()["Outputs"].as_object().unwrap();
    assert_eq!(
        outputs["DecideApprovalFunctionName"]["Value"],
        reference(decide)
    );
    assert_eq!(
        outputs["SlackInteractivityUrl"]["Condition"],
        "HasSlackSecret"
    );
}

// ---------------------------------------------------------------------------------------------
// State machines.

#[test]
fn every_state_machine_file_is_deployed_with_every_substitution() {
    let dir = repo().join("statemachines");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
        .filter(|n| n.ends_with(asl::FILE_SUFFIX))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f == asl::TRIAGE_FILE), "{files:?}");

    let machines = of_type(STATE_MACHINE);
    let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
    let function_roles: BTreeSet<&str> = of_type(FUNCTION)
        .into_iter()
        .map(|(id, _)| role_of(id))
        .collect();
    for file in &files {
        let uri = format!("statemachines/{file}");
        let found: Vec<&str> = machines
            .iter()
            .filter(|(_, m)| m["Properties"]["DefinitionUri"] == uri.as_str())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{file}: state machines deploying it: {found:?}"
        );
        let id = found[0];
        let props = &resource(id)["Properties"];
        assert_eq!(props["Type"], "STANDARD", "{id}");

        let logging = &props["Logging"];
        assert_eq!(logging["Level"], "ERROR", "{id}");
        assert_eq!(logging["IncludeExecutionData"], false, "{id}");
        let group = &items(&logging["Destinations"])[0]["CloudWatchLogsLogGroup"]["LogGroupArn"];
        let group_id = target(group).unwrap_or_else(|| panic!("{id}: log group {group}"));
        assert_eq!(*group, get_att(group_id, "Arn"), "{id}");
        assert_eq!(type_of(group_id), "AWS::Logs::LogGroup", "{id}");

        let definition: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let placeholders = asl::placeholders(&definition);
        let substitutions = props["DefinitionSubstitutions"]
            .as_object()
            .unwrap_or_else(|| panic!("{id}: no DefinitionSubstitutions"));
        let keys: BTreeSet<String> = substitutions.keys().cloned().collect();
        assert_eq!(
            keys, placeholders,
            "{id}: substitutions vs ${{…}} in {file}"
        );

        let mut functions = BTreeSet::new();
        let mut started = BTreeSet::new();
        for (name, value) in substitutions {
            if name.ends_with("Function") {
                assert_eq!(*value, get_att(name, "Arn"), "{id} ${{{name}}}");
                assert_eq!(type_of(name), FUNCTION, "{id} ${{{name}}}");
                functions.insert(canonical(value));
            } else if name.starts_with("Playbook") && name.ends_with("StateMachine") {
                assert_eq!(*value, reference(name), "{id} ${{{name}}}");
                assert_eq!(type_of(name), STATE_MACHINE, "{id} ${{{name}}}");
                started.insert(canonical(value));
            } else {
                panic!("{id}: no rule for the substitution ${{{name}}}");
            }
        }

        let role = role_of(id);
        assert_eq!(trusted_service(role), "states.amazonaws.com", "{role}");
        assert!(
            !function_roles.contains(role),
            "{id} shares {role} with a function"
        );
        if let Some(other) = roles.insert(role, id) {
            panic!("{id} and {other} share the role {role}");
        }
        assert_eq!(
            allowed(role, "lambda:InvokeFunction"),
            functions,
            "{role}: may invoke exactly the functions {file} names"
        );
        assert_eq!(
            allowed(role, "states:StartExecution"),
            started,
            "{role}: may start exactly the state machines {file} names"
        );
    }
    for (id, m) in machines {
        let uri = m["Properties"]["DefinitionUri"].as_str().unwrap();
        assert!(
            files.iter().any(|f| uri == format!("statemachines/{f}")),
            "{id} deploys {uri}, which is not a committed state machine"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tables.

fn attr_type(a: AttrType) -> &'static str {
    match a {
        AttrType::S => "S",
        AttrType::N => "N",
    }
}

fn key_schema(partition: KeyAttr, sort: Option<KeyAttr>) -> Value {
    let mut out = vec![json!({"AttributeName": partition.name, "KeyType": "HASH"})];
    if let Some(s) = sort {
        out.push(json!({"AttributeName": s.name, "KeyType": "RANGE"}));
    }
    Value::Array(out)
}

#[test]
fn every_table_matches_the_schema() {
    assert_eq!(
        of_type(TABLE).len(),
        schema::TABLES.len(),
        "one table per schema::TABLES entry"
    );
    for spec in schema::TABLES {
        // The table is the one the functions are given in its variable.
        let given: BTreeSet<String> = of_type(FUNCTION)
            .into_iter()
            .filter_map(|(id, _)| ir_variables(id).remove(spec.env_var))
            .map(|v| canonical(&v))
            .collect();
        assert_eq!(given.len(), 1, "{}: {given:?}", spec.env_var);
        let value: Value = serde_json::from_str(given.first().unwrap()).unwrap();
        let id = target(&value).unwrap();
        let table = resource(id);
        assert_eq!(type_of(id), TABLE, "{}", spec.env_var);
        let p = &table["Properties"];

        assert_eq!(
            p["TableName"],
            json!({"Fn::Sub": format!("${{AWS::StackName}}-{}", spec.suffix)}),
            "{id}"
        );
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{id}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{id}"
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{id}");
        assert_eq!(p["DeletionProtectionEnabled"], true, "{id}");
        assert_eq!(table["DeletionPolicy"], "Retain", "{id}");
        assert_eq!(table["UpdateReplacePolicy"], "Retain", "{id}");

        assert_eq!(
            p["KeySchema"],
            key_schema(spec.partition_key, spec.sort_key),
            "{id}"
        );
        let defined: BTreeSet<(String, String)> = items(&p["AttributeDefinitions"])
            .into_iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let wanted: BTreeSet<(String, String)> = spec
            .attribute_definitions()
            .into_iter()
            .map(|a| (a.name.to_owned(), attr_type(a.kind).to_owned()))
            .collect();
        assert_eq!(defined, wanted, "{id}: AttributeDefinitions");

        let indexes: BTreeMap<String, &Value> = items(&p["GlobalSecondaryIndexes"])
            .into_iter()
            .map(|i| (i["IndexName"].as_str().unwrap().to_owned(), i))
            .collect();
        let names: BTreeSet<&str> = indexes.keys().map(String::as_str).collect();
        let wanted_names: BTreeSet<&str> = spec.indexes.iter().map(|i| i.name).collect();
        assert_eq!(names, wanted_names, "{id}: indexes");
        for index in spec.indexes {
            let i = indexes[index.name];
            assert_eq!(
                i["KeySchema"],
                key_schema(index.partition_key, index.sort_key),
                "{id} {}",
                index.name
            );
            assert_eq!(
                i["Projection"],
                json!({"ProjectionType": "ALL"}),
                "{id} {}",
                index.name
            );
        }

        match spec.ttl_attribute {
            Some(attribute) => assert_eq!(
                p["TimeToLiveSpecification"],
                json!({"AttributeName": attribute, "Enabled": true}),
                "{id}"
            ),
            None => assert!(p["TimeToLiveSpecification"].is_null(), "{id}: no TTL"),
        }
        match spec.stream {
            Some(view) => assert_eq!(
                p["StreamSpecification"],
                json!({"StreamViewType": view}),
                "{id}"
            ),
            None => assert!(p["StreamSpecification"].is_null(), "{id}: no stream"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Findings in.

fn statement_allows(policy: &Value, service: &str, action: &str, source_arn: &Value) -> bool {
    items(&policy["Statement"]).into_iter().any(|s| {
        s["Effect"] == "Allow"
            && s["Principal"]["Service"] == service
            && items(&s["Action"]).iter().any(|a| *a == action)
            && items(&s["Condition"]["ArnEquals"]["aws:SourceArn"]).contains(&source_arn)
    })
}

#[test]
fn findings_rules_feed_ingest_with_retries_and_a_dead_letter_queue() {
    let ingest = function_of("ir-ingest");
    let rules: Vec<_> = of_type(RULE)
        .into_iter()
        .filter(|(_, r)| {
            items(&r["Properties"]["Targets"])
                .iter()
                .any(|t| t["Arn"] == get_att(ingest, "Arn"))
        })
        .collect();
    assert_eq!(rules.len(), 2, "a GuardDuty rule and a Security Hub rule");

    // The product name GuardDuty's findings carry in Security Hub, from the sample.
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("events/securityhub-guardduty-duplicate.json"))
            .unwrap(),
    )
    .unwrap();
    let guardduty_product = &sample["detail"]["findings"][0]["ProductName"];
    assert_eq!(*guardduty_product, "GuardDuty");
    let ocsf: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("events/securityhub-ocsf-guardduty-bitcoin.json"))
            .unwrap(),
    )
    .unwrap();
    let ocsf_product = &ocsf["detail"]["findings"][0]["metadata"]["product"]["name"];
    assert_eq!(ocsf_product, guardduty_product);
    assert_eq!(ocsf["detail"]["findings"][0]["status_id"], 1);

    let pattern_of = |source: &str| -> (&'static str, &'static Value) {
        let found: Vec<_> = rules
            .iter()
            .filter(|(_, r)| r["Properties"]["EventPattern"]["source"] == json!([source]))
            .collect();
        assert_eq!(found.len(), 1, "rules for {source}");
        (found[0].0, &found[0].1["Properties"]["EventPattern"])
    };
    let (guardduty, pattern) = pattern_of(GUARDDUTY_SOURCE);
    assert_eq!(
        *pattern,
        json!({"source": [GUARDDUTY_SOURCE], "detail-type": [GUARDDUTY_DETAIL_TYPE]}),
        "{guardduty}"
    );
    let (securityhub, pattern) = pattern_of(SECURITYHUB_SOURCE);
    assert_eq!(
        *pattern,
        json!({
            "source": [SECURITYHUB_SOURCE],
            "$or": [
                {
                    "detail-type": [SECURITYHUB_DETAIL_TYPE],
                    "detail": {"findings": {
                        "Workflow": {"Status": ["NEW"]},
                        "RecordState": ["ACTIVE"],
                        "ProductName": [{"anything-but": guardduty_product}],
                    }},
                },
                {
                    // OCSF: new findings only; GuardDuty's come from the GuardDuty rule.
                    "detail-type": [SECURITYHUB_OCSF_DETAIL_TYPE],
                    "detail": {"findings": {
                        "status_id": [1],
                        "metadata": {"product": {"name": [{"anything-but": ocsf_product}]}},
                    }},
                },
            ],
        }),
        "{securityhub}"
    );

    let mut queues = BTreeSet::new();
    for rule in [guardduty, securityhub] {
        let p = &resource(rule)["Properties"];
        assert_eq!(p["State"], "ENABLED", "{rule}");
        let targets = items(&p["Targets"]);
        assert_eq!(targets.len(), 1, "{rule}");
        let t = targets[0];
        assert_eq!(t["Arn"], get_att(ingest, "Arn"), "{rule}");
        let attempts = t["RetryPolicy"]["MaximumRetryAttempts"].as_u64().unwrap();
        assert!((1..=185).contains(&attempts), "{rule}: {attempts} attempts");
        let age = t["RetryPolicy"]["MaximumEventAgeInSeconds"]
            .as_u64()
            .unwrap();
        assert!((60..=86_400).contains(&age), "{rule}: {age} s");
        let dlq = &t["DeadLetterConfig"]["Arn"];
        let queue = target(dlq).unwrap_or_else(|| panic!("{rule}: dead-letter queue {dlq}"));
        assert_eq!(*dlq, get_att(queue, "Arn"), "{rule}");
        assert_eq!(type_of(queue), QUEUE, "{rule}");
        queues.insert(queue);

        // Lambda lets exactly this rule invoke ingest.
        let rule_arn = get_att(rule, "Arn");
        assert!(
            of_type("AWS::Lambda::Permission")
                .into_iter()
                .any(|(_, perm)| {
                    let pp = &perm["Properties"];
                    pp["Principal"] == "events.amazonaws.com"
                        && pp["Action"] == "lambda:InvokeFunction"
                        && target(&pp["FunctionName"]) == Some(ingest)
                        && pp["SourceArn"] == rule_arn
                }),
            "{rule}: no lambda permission for events.amazonaws.com from this rule"
        );
        // The queue takes this rule's dead letters.
        assert!(
            of_type("AWS::SQS::QueuePolicy").into_iter().any(|(_, qp)| {
                items(&qp["Properties"]["Queues"]).contains(&&reference(queue))
                    && statement_allows(
                        &qp["Properties"]["PolicyDocument"],
                        "events.amazonaws.com",
                        "sqs:SendMessage",
                        &rule_arn,
                    )
            }),
            "{queue}: no policy letting {rule} send its dead letters"
        );
    }
    for queue in &queues {
        let p = &resource(queue)["Properties"];
        assert!(
            p["SqsManagedSseEnabled"] == true || !p["KmsMasterKeyId"].is_null(),
            "{queue}: encrypted at rest"
        );
        assert_eq!(p["MessageRetentionPeriod"], 14 * 86_400, "{queue}");
    }
    // What ingest itself refuses after Lambda's retries lands in the same queue.
    let on_failure =
        &resource(ingest)["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS", "{ingest}");
    let queue = target(&on_failure["Destination"]).unwrap();
    assert!(queues.contains(queue), "{ingest}: dead letters to {queue}");
    assert!(
        allowed(role_of(ingest), "sqs:SendMessage").contains(&canonical(&get_att(queue, "Arn"))),
        "{ingest}: its role may send to {queue}"
    );
}

// ---------------------------------------------------------------------------------------------
// Roles.

#[test]
fn every_role_is_the_suites_and_only_functions_and_state_machines_have_one() {
    let roles = of_type(ROLE);
    for (id, role) in &roles {
        let p = &role["Properties"];
        assert_eq!(p["Path"], SUITE_PATH, "{id}");
        assert!(
            items(&p["Tags"]).contains(&&json!({"Key": "ir:suite", "Value": "true"})),
            "{id}: tag ir:suite=true"
        );
    }
    for (id, policy) in of_type(MANAGED_POLICY) {
        assert_eq!(policy["Properties"]["Path"], SUITE_PATH, "{id}");
    }
    // Every role is one function's, one state machine's or the clocks schedule's: none for
    // anyone else to assume.
    let mut used: BTreeSet<&str> = of_type(FUNCTION)
        .into_iter()
        .chain(of_type(STATE_MACHINE))
        .map(|(id, _)| role_of(id))
        .collect();
    for (id, schedule) in of_type("AWS::Scheduler::Schedule") {
        let role = target(&schedule["Properties"]["Target"]["RoleArn"]).unwrap();
        assert_eq!(type_of(role), ROLE, "{id}");
        // The schedule's role may invoke its target and nothing else.
        let statements = role_statements(role);
        assert_eq!(statements.len(), 1, "{role}");
        assert_eq!(statements[0]["Action"], "lambda:InvokeFunction", "{role}");
        assert_eq!(
            statements[0]["Resource"], schedule["Properties"]["Target"]["Arn"],
            "{role}"
        );
        used.insert(role);
    }
    let declared: BTreeSet<&str> = roles.iter().map(|(id, _)| *id).collect();
    assert_eq!(declared, used, "roles nothing runs under");
}

/// `Resource: "*"` only where the API has no resource to scope to (ARCHITECTURE.md, "Least
/// privilege"), and never an action wildcard on `*`.
#[test]
fn resource_wildcards_are_only_the_documented_ones() {
    fn documented(action: &str) -> bool {
        action.starts_with("ec2:Describe")
            || action.starts_with("s3:GetBucket")
            || action == "s3:GetEncryptionConfiguration"
            || action == "states:SendTaskSuccess"
            || action == "states:SendTaskFailure"
            || action == "dynamodb:ListStreams"
            || [
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ]
            .contains(&action)
    }
    for (role, _) in of_type(ROLE) {
        for s in role_statements(role) {
            if s["Effect"] != "Allow" {
                continue;
            }
            let actions: Vec<&str> = items(&s["Action"])
                .into_iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            for a in &actions {
                assert!(!a.contains('*'), "{role}: action wildcard {a} in {s}");
            }
            if items(&s["Resource"]).iter().any(|r| *r == "*") {
                for a in actions {
                    assert!(documented(a), "{role}: {a} on Resource \"*\"");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Least privilege, measured (ARCHITECTURE.md, "Least privilege (template.yaml)").

const ACTION_PACKAGES: &[&str] = &[
    "ir-isolate-instance",
    "ir-snapshot-volumes",
    "ir-terminate-instance",
    "ir-revoke-sessions",
    "ir-deny-principal",
    "ir-disable-access-keys",
    "ir-collect-evidence",
];
const IAM_ACTION_PACKAGES: &[&str] = &[
    "ir-revoke-sessions",
    "ir-deny-principal",
    "ir-disable-access-keys",
];
/// The longest stack name the role names are checked against (the template's Description says
/// so): IAM role names are at most 64 characters.
const MAX_STACK_NAME: usize = 20;

/// A role's name after the stack name: `RoleName: !Sub "${AWS::StackName}-<short>"`.
fn role_short_name(role: &str) -> &'static str {
    let name = &resource(role)["Properties"]["RoleName"];
    name["Fn::Sub"]
        .as_str()
        .and_then(|s| s.strip_prefix("${AWS::StackName}-"))
        .unwrap_or_else(|| panic!("{role}: RoleName {name}"))
}

fn role_arn_sub(short: &str) -> String {
    format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/ir-suite/${{AWS::StackName}}-{short}"
    )
}

/// The exact ARN of every role of the suite, as `!Sub` text.
fn suite_principals() -> BTreeSet<String> {
    of_type(ROLE)
        .into_iter()
        .map(|(id, _)| role_arn_sub(role_short_name(id)))
        .collect()
}

/// The Allow statements of a role that name `action`.
fn allowing(role: &str, action: &str) -> Vec<&'static Value> {
    role_statements(role)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow" && items(&s["Action"]).iter().any(|a| *a == action))
        .collect()
}

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

#[test]
fn every_role_has_a_known_name_that_fits() {
    let mut shorts = BTreeSet::new();
    for (id, _) in of_type(ROLE) {
        let short = role_short_name(id);
        assert!(shorts.insert(short), "{id}: {short} twice");
        let longest = MAX_STACK_NAME + 1 + short.len();
        assert!(
            longest <= 64,
            "{id}: {longest} characters with a 20-character stack name"
        );
    }
}

#[test]
fn every_function_logs_to_its_own_declared_group_only() {
    let retention = &template()["Parameters"]["LogRetentionDays"];
    assert_eq!(retention["Default"], 365);
    for (id, f) in of_type(FUNCTION) {
        let group = &f["Properties"]["LoggingConfig"]["LogGroup"];
        let group_id = target(group).unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup"));
        assert_eq!(type_of(group_id), "AWS::Logs::LogGroup", "{id}");
        let gp = &resource(group_id)["Properties"];
        let name = f["Properties"]["FunctionName"]["Fn::Sub"].as_str().unwrap();
        assert_eq!(
            gp["LogGroupName"],
            sub(&format!("/aws/lambda/{name}")),
            "{id}"
        );
        assert_eq!(gp["RetentionInDays"], reference("LogRetentionDays"), "{id}");
        let role = role_of(id);
        assert!(
            resource(role)["Properties"]["ManagedPolicyArns"].is_null(),
            "{role}: no managed policy (AWSLambdaBasicExecutionRole is gone)"
        );
        for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
            assert_eq!(
                allowed(role, action),
                BTreeSet::from([canonical(&get_att(group_id, "Arn"))]),
                "{role}: {action}"
            );
        }
        assert!(allowing(role, "logs:CreateLogGroup").is_empty(), "{role}");
    }
    let levels = &template()["Parameters"]["LogLevel"]["AllowedValues"];
    assert!(!items(levels).contains(&&json!("trace")), "{levels}");
}

#[test]
fn deny_principal_attaches_only_the_templates_deny_all() {
    let policy = &resource("ContainmentDenyAllPolicy")["Properties"];
    assert_eq!(type_of("ContainmentDenyAllPolicy"), MANAGED_POLICY);
    assert_eq!(policy["Path"], SUITE_PATH);
    let name = policy["ManagedPolicyName"]["Fn::Sub"].as_str().unwrap();
    assert!(
        name.ends_with(ir_actions::iam::DENY_POLICY_NAME_SUFFIX),
        "release recognizes it by its name: {name}"
    );
    let statements = items(&policy["PolicyDocument"]["Statement"]);
    assert_eq!(statements.len(), 1);
    let s = statements[0];
    assert_eq!(
        (&s["Effect"], &s["Action"], &s["Resource"]),
        (&json!("Deny"), &json!("*"), &json!("*"))
    );
    assert!(
        s["Condition"].is_null(),
        "a deny-all conditioned on nothing"
    );

    let f = function_of("ir-deny-principal");
    assert_eq!(
        ir_variables(f)["IR_DENY_POLICY_ARN"],
        reference("ContainmentDenyAllPolicy")
    );
    let role = role_of(f);
    for action in ["iam:AttachRolePolicy", "iam:AttachUserPolicy"] {
        let found = allowing(role, action);
        assert!(!found.is_empty(), "{role}: {action}");
        for s in found {
            assert_eq!(
                s["Condition"],
                json!({"ArnEquals": {"iam:PolicyARN": reference("ContainmentDenyAllPolicy")}}),
                "{role}: {action}"
            );
        }
    }
    for action in ["iam:PutRolePolicy", "iam:PutUserPolicy"] {
        assert!(allowing(role, action).is_empty(), "{role}: {action}");
    }
    for action in ["iam:TagRole", "iam:TagUser"] {
        for s in allowing(role, action) {
            assert_eq!(
                s["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"],
                json!(format!("{}*", ir_actions::iam::DENY_HOLD_TAG_PREFIX)),
                "{role}: {action}"
            );
        }
    }
}

#[test]
fn isolation_changes_only_the_suites_groups_and_tags() {
    let role = role_of(function_of("ir-isolate-instance"));
    let groups = sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*");
    for action in [
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
    ] {
        let found = allowing(role, action);
        assert!(!found.is_empty(), "{role}: {action}");
        for s in found {
            assert_eq!(s["Resource"], groups, "{role}: {action}");
            assert_eq!(
                s["Condition"],
                json!({"StringEquals": {"aws:ResourceTag/ir:group": ["conversion", "isolation"]}}),
                "{role}: {action}"
            );
        }
    }
    for s in allowing(role, "ec2:CreateSecurityGroup") {
        if s["Resource"] == groups {
            assert_eq!(
                s["Condition"]["StringEquals"]["aws:RequestTag/ir:group"],
                json!(["conversion", "isolation"])
            );
        }
    }
    let tagging = allowing(role, "ec2:CreateTags");
    assert!(!tagging.is_empty());
    for s in tagging {
        let keys = &s["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"];
        assert!(
            items(keys).iter().all(|k| *k == "ir:*" || *k == "Name") && !keys.is_null(),
            "{role}: CreateTags keys {keys}"
        );
        if items(&s["Resource"]).contains(&&groups) {
            assert_eq!(
                s["Condition"]["StringEquals"]["ec2:CreateAction"], "CreateSecurityGroup",
                "{role}: groups are tagged only when created"
            );
        }
    }
    // Its isolation holds: only isolation#… keys of the keys table.
    for action in ["dynamodb:GetItem", "dynamodb:PutItem"] {
        let on_keys: Vec<_> = allowing(role, action)
            .into_iter()
            .filter(|s| s["Resource"] == get_att("KeysTable", "Arn"))
            .collect();
        assert_eq!(on_keys.len(), 1, "{role}: {action}");
        assert_eq!(
            on_keys[0]["Condition"],
            json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "isolation#*"}})
        );
    }
    let snapshot = role_of(function_of("ir-snapshot-volumes"));
    assert_eq!(
        allowed(snapshot, "ec2:LockSnapshot"),
        BTreeSet::from([canonical(&sub(
            "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"
        ))])
    );
}

#[test]
fn only_the_terminate_role_terminates_and_only_instances_of_its_account() {
    let f = function_of("ir-terminate-instance");
    let role = role_of(f);
    let instances = sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*");
    for action in [
        "ec2:TerminateInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:DescribeInstanceAttribute",
    ] {
        assert_eq!(
            allowed(role, action),
            BTreeSet::from([canonical(&instances)]),
            "{role}: {action}"
        );
    }
    for action in [
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:DescribeSnapshots",
    ] {
        assert_eq!(
            allowed(role, action),
            BTreeSet::from([canonical(&json!("*"))]),
            "{role}: {action}"
        );
    }
    // It writes nothing else: no tags, no groups, no snapshots, no holds.
    let writes: BTreeSet<String> = role_statements(role)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| items(&s["Action"]))
        .map(|a| a.as_str().unwrap().to_owned())
        .filter(|a| a.starts_with("ec2:") && !a.starts_with("ec2:Describe"))
        .collect();
    assert_eq!(
        writes,
        BTreeSet::from([
            "ec2:ModifyInstanceAttribute".to_owned(),
            "ec2:TerminateInstances".to_owned()
        ])
    );
    // Another incident's hold is read, never written: only isolation#… keys.
    let on_keys: Vec<_> = allowing(role, "dynamodb:GetItem")
        .into_iter()
        .filter(|s| s["Resource"] == get_att("KeysTable", "Arn"))
        .collect();
    assert_eq!(on_keys.len(), 1, "{role}: GetItem on the keys table");
    assert_eq!(
        on_keys[0]["Condition"],
        json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "isolation#*"}})
    );
    for action in [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ] {
        assert!(
            !allowed(role, action).contains(&canonical(&get_att("KeysTable", "Arn"))),
            "{role}: {action} on the keys table"
        );
    }
    // No other role may terminate an instance, and no committed state machine invokes it (no
    // default playbook names cloud:terminate_instance).
    for (other, _) in of_type(ROLE) {
        if other != role {
            assert!(
                allowing(other, "ec2:TerminateInstances").is_empty(),
                "{other} may terminate instances"
            );
        }
        assert!(
            !allowed(other, "lambda:InvokeFunction").contains(&canonical(&get_att(f, "Arn"))),
            "{other} may invoke {f}"
        );
    }
}

#[test]
fn the_keys_table_is_written_by_isolation_the_recorder_and_the_decision_each_on_its_own_keys() {
    let keys = get_att("KeysTable", "Arn");
    let writers: BTreeMap<&str, Value> = of_type("AWS::IAM::Role")
        .into_iter()
        .filter_map(|(role, _)| {
            let on_keys: Vec<_> = allowing(role, "dynamodb:PutItem")
                .into_iter()
                .filter(|s| items(&s["Resource"]).contains(&&keys))
                .collect();
            match on_keys.as_slice() {
                [] => None,
                [one] => Some((role, one["Condition"].clone())),
                more => panic!("{role}: {} statements write the keys table", more.len()),
            }
        })
        .collect();
    let ingest = role_of(function_of("ir-ingest"));
    let isolate = role_of(function_of("ir-isolate-instance"));
    let record = role_of(function_of("ir-record"));
    let decide = role_of(function_of("ir-decide-approval"));
    let announce = role_of(function_of("ir-announce"));
    let clocks = role_of(function_of("ir-clocks"));
    let notify = role_of(function_of("ir-notify"));
    assert_eq!(
        writers.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([ingest, isolate, record, decide, announce, clocks, notify])
    );
    assert_eq!(
        writers[notify],
        json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "jira-issue#*"}}),
        "the notifier records the Jira issues it made only"
    );
    assert_eq!(
        writers[announce],
        json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "announced#*"}}),
        "the announcer marks announced records only"
    );
    assert_eq!(
        writers[clocks],
        json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "leadership#*"}}),
        "the clocks mark leadership summaries only"
    );
    assert_eq!(
        writers[decide],
        json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "slack-request#*"}}),
        "the decision function writes used Slack requests only"
    );
    assert_eq!(
        writers[record],
        json!({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": "playbook-slots"}}),
        "the recorder writes the playbook slots only"
    );
    // Every other writer is held to its own key prefix, which the slots' key is not under.
    for role in [ingest, isolate, decide, announce, clocks, notify] {
        let like = &writers[role]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
        let patterns: Vec<&str> = match like {
            Value::String(p) => vec![p.as_str()],
            Value::Array(ps) => ps.iter().filter_map(Value::as_str).collect(),
            _ => panic!(
                "{role}: no key condition on the keys table: {}",
                writers[role]
            ),
        };
        for p in patterns {
            let prefix = p.strip_suffix('*').unwrap_or(p);
            assert!(
                !prefix.is_empty() && !"playbook-slots".starts_with(prefix),
                "{role}: {p}"
            );
        }
    }
    assert_eq!(ir_aws::store::SLOTS_KEY, "playbook-slots");
}

#[test]
fn action_functions_read_the_records_and_may_append_a_refusal() {
    for package in ACTION_PACKAGES.iter().chain(&["ir-notify"]) {
        let f = function_of(package);
        let vars = ir_variables(f);
        for spec in schema::TABLES {
            assert!(vars.contains_key(spec.env_var), "{f}: {}", spec.env_var);
        }
        let role = role_of(f);
        let get = allowed(role, "dynamodb:GetItem");
        for table in ["IncidentsTable", "ApprovalsTable"] {
            assert!(
                get.contains(&canonical(&get_att(table, "Arn"))),
                "{role}: GetItem {table}"
            );
        }
        for action in ["dynamodb:Query", "dynamodb:PutItem"] {
            assert!(
                allowed(role, action).contains(&canonical(&get_att("AuditTable", "Arn"))),
                "{role}: {action} on the audit table"
            );
        }
    }
    for package in IAM_ACTION_PACKAGES {
        assert!(
            ir_variables(function_of(package)).contains_key("IR_SUITE_PRINCIPALS"),
            "{package}"
        );
    }
    // The calls collect-evidence's describe code makes.
    let collect = role_of(function_of("ir-collect-evidence"));
    assert!(!allowing(collect, "iam:ListGroupsForUser").is_empty());
}

/// Every role that may change IAM principals carries the explicit deny on the suite's own roles.
#[test]
fn iam_actions_never_touch_the_suites_roles() {
    let suite_roles = sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ir-suite/*");
    for (role, _) in of_type(ROLE) {
        let mutates = role_statements(role).into_iter().any(|s| {
            s["Effect"] == "Allow"
                && items(&s["Action"]).iter().any(|a| {
                    let a = a.as_str().unwrap();
                    a.starts_with("iam:") && !a.starts_with("iam:Get") && !a.starts_with("iam:List")
                })
        });
        if !mutates {
            continue;
        }
        let denied: BTreeSet<&str> = role_statements(role)
            .into_iter()
            .filter(|s| s["Effect"] == "Deny" && s["Resource"] == suite_roles)
            .flat_map(|s| items(&s["Action"]))
            .map(|a| a.as_str().unwrap())
            .collect();
        for a in [
            "iam:Put*",
            "iam:Attach*",
            "iam:Tag*",
            "iam:Update*",
            "iam:Delete*",
        ] {
            assert!(
                denied.contains(a),
                "{role}: no explicit deny of {a} on the suite's roles"
            );
        }
    }
    // revoke-sessions' inline policy names cannot be limited by IAM: watched instead.
    let rule = &resource("RevokeSessionsForeignPolicyRule");
    assert_eq!(rule["Condition"], "HasTrailBucket");
    let detail = &rule["Properties"]["EventPattern"]["detail"];
    assert_eq!(
        detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
        json!([get_att("RevokeSessionsRole", "Arn")])
    );
    assert_eq!(
        detail["requestParameters"]["policyName"],
        json!([{"anything-but": {"prefix": "ir-revoke-sessions-"}}])
    );
}

fn key_statement<'a>(key: &'a Value, sid: &str) -> &'a Value {
    items(&key["Properties"]["KeyPolicy"]["Statement"])
        .into_iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no key statement {sid}"))
}

#[test]
fn approval_tokens_are_encrypted_with_a_key_only_the_gate_uses() {
    let key = resource("ApprovalTokenKey");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    let admin = key_statement(key, "AccountAdministersNotUses");
    for a in items(&admin["Action"]) {
        let a = a.as_str().unwrap();
        assert!(!a.contains('*'), "{a}");
        for usage in [
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "ReEncrypt",
            "CreateGrant",
        ] {
            assert!(!a.contains(usage), "the account may not use the key: {a}");
        }
    }
    for (sid, role, action) in [
        (
            "RequestApprovalEncrypts",
            "RequestApprovalRole",
            "kms:Encrypt",
        ),
        (
            "DecideApprovalDecrypts",
            "DecideApprovalRole",
            "kms:Decrypt",
        ),
    ] {
        let s = key_statement(key, sid);
        assert_eq!(s["Principal"]["AWS"], get_att(role, "Arn"));
        assert_eq!(s["Action"], action);
        assert_eq!(
            s["Condition"],
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "incidentId"}})
        );
    }
    let uses: Vec<_> = items(&key["Properties"]["KeyPolicy"]["Statement"])
        .into_iter()
        .filter(|s| canonical(&s["Action"]).contains("crypt"))
        .collect();
    assert_eq!(uses.len(), 2, "only the two gate roles use the key");
}

#[test]
fn evidence_and_audit_cannot_be_spoiled() {
    let statements = |id: &str, path: &[&str]| -> Vec<&'static Value> {
        let mut v = &resource(id)["Properties"];
        for p in path {
            v = &v[*p];
        }
        items(&v["Statement"])
    };
    let find = |list: &[&'static Value], sid: &str| -> &'static Value {
        list.iter()
            .copied()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    };
    let break_glass = reference("BreakGlassRoleArn");
    assert_eq!(template()["Parameters"]["BreakGlassRoleArn"]["Default"], "");

    let bucket = statements("EvidenceBucketPolicy", &["PolicyDocument"]);
    // Object writes stay open to the operators' own credentials: `ir release` anchors the
    // chain with them (ARCHITECTURE.md, least privilege).
    assert!(
        bucket
            .iter()
            .all(|s| s["Sid"] != "OnlyTheSuitesWritersWrite")
    );
    let policy = find(&bucket, "NoPolicyChangesNoDeleteMarkers");
    for a in [
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:DeleteObject",
    ] {
        assert!(items(&policy["Action"]).contains(&&json!(a)), "{a}");
    }
    assert!(canonical(&policy["Condition"]).contains(&canonical(&break_glass)));

    let key = resource("EvidenceKey");
    let deny = key_statement(key, "NoDisableNoDeletionNoPolicyChange");
    assert_eq!(deny["Effect"], "Deny");
    for a in [
        "kms:DisableKey",
        "kms:ScheduleKeyDeletion",
        "kms:PutKeyPolicy",
    ] {
        assert!(items(&deny["Action"]).contains(&&json!(a)), "{a}");
    }
    let exempt = canonical(&deny["Condition"]);
    assert!(exempt.contains(&canonical(&break_glass)), "{exempt}");
    assert!(
        exempt.contains(":root"),
        "the root user stays able to administer: {exempt}"
    );
    assert_eq!(
        key_statement(key, "AccountAdministers")["Action"],
        "kms:*",
        "the account administers otherwise"
    );

    let audit = statements("AuditTable", &["ResourcePolicy", "PolicyDocument"]);
    let append_only = find(&audit, "AppendOnly");
    assert_eq!(append_only["Effect"], "Deny");
    assert!(append_only["Condition"].is_null());
    assert_eq!(
        append_only["Action"],
        json!([
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem"
        ])
    );
}

#[test]
fn the_shipped_policies_are_valid_json() {
    for file in [
        "approver-identity-policy.json",
        "scp-protect-the-suite.json",
        "responder-role-trust-policy.json",
    ] {
        let path = repo().join("policies").join(file);
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(doc["Version"], "2012-10-17", "{file}");
        assert!(!items(&doc["Statement"]).is_empty(), "{file}");
    }
    let approver: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("policies/approver-identity-policy.json")).unwrap(),
    )
    .unwrap();
    let statements = items(&approver["Statement"]);
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    assert!(
        statements[0]["Resource"]
            .as_str()
            .unwrap()
            .ends_with("-ir-decide-approval")
    );
    // A shared responder role binds the session name (the person the suite counts) to the user.
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("policies/responder-role-trust-policy.json")).unwrap(),
    )
    .unwrap();
    let statements = items(&trust["Statement"]);
    assert_eq!(
        statements[0]["Condition"]["StringEquals"]["sts:RoleSessionName"],
        "${aws:username}"
    );
}

#[test]
fn notify_reads_only_the_chat_secrets_it_is_given() {
    // The secrets' ARNs are parameters; only ir-notify is given them (and the decision
    // function the Slack one, for its signing secret), and only their roles may read them,
    // and only when given.
    for (id, _) in of_type(FUNCTION) {
        let vars = ir_variables(id);
        assert_eq!(
            vars.contains_key("IR_JIRA_SECRET_ARN"),
            id == "NotifyFunction",
            "{id}"
        );
        assert_eq!(
            vars.contains_key("IR_SLACK_SECRET_ARN"),
            [
                "NotifyFunction",
                "DecideApprovalFunction",
                "AnnounceFunction",
                "ClocksFunction"
            ]
            .contains(&id),
            "{id}"
        );
    }
    let decide = &resource("DecideApprovalRole")["Properties"]["Policies"];
    let slack = decide
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.to_string().contains("secretsmanager"))
        .unwrap();
    assert_eq!(slack["Fn::If"][0], "HasSlackSecret");
    assert_eq!(
        slack["Fn::If"][1]["PolicyDocument"]["Statement"][0]["Resource"],
        json!({"Ref": "SlackSecretArn"})
    );
    let vars = ir_variables("NotifyFunction");
    assert_eq!(
        vars["IR_SLACK_SECRET_ARN"],
        json!({"Fn::If": ["HasSlackSecret", {"Ref": "SlackSecretArn"}, {"Ref": "AWS::NoValue"}]})
    );
    assert_eq!(
        vars["IR_JIRA_SECRET_ARN"],
        json!({"Fn::If": ["HasJiraSecret", {"Ref": "JiraSecretArn"}, {"Ref": "AWS::NoValue"}]})
    );
    let text = serde_json::to_string(&template()["Resources"]).unwrap();
    assert_eq!(
        text.matches("secretsmanager:GetSecretValue").count(),
        4,
        "four statements in the whole template may read a secret"
    );
    // The announcer exists only with a Slack secret; the clocks read it only when given.
    assert_eq!(resource("AnnounceRole")["Condition"], "HasSlackSecret");
    assert_eq!(
        allowed("AnnounceRole", "secretsmanager:GetSecretValue"),
        BTreeSet::from([canonical(&json!({"Ref": "SlackSecretArn"}))])
    );
    let clocks = &resource("ClocksRole")["Properties"]["Policies"];
    let slack = clocks
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.to_string().contains("secretsmanager"))
        .unwrap();
    assert_eq!(slack["Fn::If"][0], "HasSlackSecret");
    let policies = &resource("NotifyRole")["Properties"]["Policies"];
    let chat = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.to_string().contains("secretsmanager"))
        .unwrap();
    assert_eq!(chat["Fn::If"][0], "HasChatSecret");
    let statement = &chat["Fn::If"][1]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(
        statement["Resource"],
        json!([
            {"Fn::If": ["HasSlackSecret", {"Ref": "SlackSecretArn"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["HasJiraSecret", {"Ref": "JiraSecretArn"}, {"Ref": "AWS::NoValue"}]}
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// member-account.yaml: the role the suite's actions assume in a member account.

fn member_template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| load("member-account.yaml"))
}

/// `v` with `!Sub` strings filled from `params` (and the partition `aws`), and `!If` resolved by
/// `conditions`: the document as CloudFormation would deploy it with those parameters.
fn rendered(v: &Value, params: &[(&str, &str)], conditions: &[(&str, bool)]) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let mut text = m["Fn::Sub"].as_str().unwrap().to_owned();
            text = text.replace("${AWS::Partition}", "aws");
            for (name, value) in params {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            assert!(!text.contains("${"), "unresolved: {text}");
            Value::String(text)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            let name = m["Ref"].as_str().unwrap();
            let value = params
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            Value::String(value.1.to_owned())
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::If") => {
            let branches = m["Fn::If"].as_array().unwrap();
            let name = branches[0].as_str().unwrap();
            let holds = conditions
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no condition {name}"))
                .1;
            rendered(&branches[if holds { 1 } else { 2 }], params, conditions)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), rendered(v, params, conditions)))
                .collect(),
        ),
        Value::Array(a) => {
            Value::Array(a.iter().map(|v| rendered(v, params, conditions)).collect())
        }
        other => other.clone(),
    }
}

fn member_role() -> &'static Value {
    &member_template()["Resources"]["MemberResponderRole"]["Properties"]
}

#[test]
fn the_member_role_is_the_one_the_suite_assumes_and_trusts_only_its_action_roles() {
    use ir_core::accounts::{MEMBER_DENY_POLICY_NAME, MEMBER_PATH, MEMBER_ROLE_NAME};
    let role = member_role();
    assert_eq!(role["RoleName"], MEMBER_ROLE_NAME);
    assert_eq!(role["Path"], MEMBER_PATH);
    let policy = &member_template()["Resources"]["MemberDenyAllPolicy"]["Properties"];
    assert_eq!(policy["ManagedPolicyName"], MEMBER_DENY_POLICY_NAME);
    assert_eq!(policy["Path"], MEMBER_PATH);
    assert!(ir_actions::iam::is_suite_deny_policy_arn(
        &ir_core::accounts::member_deny_policy_arn("aws", "222233334444")
    ));

    // Rendered with an external id only: exactly the trust the offline suite's member account
    // holds (ir_tests::member), so the cross-account tests assume what the template deploys.
    let trust = rendered(
        &role["AssumeRolePolicyDocument"],
        &[
            ("SecurityAccountId", ir_tests::ACCOUNT_ID),
            ("SuiteStackName", ir_tests::member::SUITE_STACK),
            ("ExternalId", ir_tests::member::EXTERNAL_ID),
        ],
        &[
            ("HasBoth", false),
            ("HasOrganization", false),
            ("HasExternalId", true),
        ],
    );
    assert_eq!(
        trust,
        ir_tests::member::trust_policy(ir_tests::ACCOUNT_ID, ir_tests::member::EXTERNAL_ID)
    );
    // The principals it trusts are the suite's action roles, as template.yaml names them.
    for package in ACTION_PACKAGES {
        let short = role_short_name(role_of(function_of(package)));
        assert!(
            ir_tests::member::TRUSTED_ACTIONS.contains(&short),
            "{package}'s role {short} is not trusted by the member role"
        );
    }
    // With an organization id: the caller's organization is required too.
    let both = rendered(
        &role["AssumeRolePolicyDocument"],
        &[
            ("SecurityAccountId", ir_tests::ACCOUNT_ID),
            ("SuiteStackName", "ir"),
            ("OrganizationId", "o-abcdefghij"),
            ("ExternalId", "x1"),
        ],
        &[
            ("HasBoth", true),
            ("HasOrganization", true),
            ("HasExternalId", true),
        ],
    );
    assert_eq!(
        both["Statement"][0]["Condition"]["StringEquals"],
        json!({"aws:PrincipalOrgID": "o-abcdefghij", "sts:ExternalId": "x1"})
    );
}

/// The actions a member-role statement list or a suite role allows, of the services an action
/// calls where the resource is (EC2, IAM, S3 bucket reads; not the evidence bucket's Object Lock
/// check, which is the security account's).
fn acting_calls(statements: &[&Value]) -> BTreeSet<String> {
    statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| items(&s["Action"]))
        .filter_map(Value::as_str)
        .filter(|a| {
            a.starts_with("ec2:")
                || a.starts_with("iam:")
                || a.starts_with("s3:GetBucket")
                || *a == "s3:GetEncryptionConfiguration"
        })
        .filter(|a| *a != "s3:GetBucketObjectLockConfiguration")
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_actions_session_may_do_what_its_role_does_at_home_and_the_member_role_holds_them_all() {
    let mut member_statements = Vec::new();
    for p in items(&member_role()["Policies"]) {
        document_statements(&p["PolicyDocument"], &mut member_statements);
    }
    let member = acting_calls(&member_statements);
    let mut union = BTreeSet::new();
    for package in ACTION_PACKAGES {
        let session: BTreeSet<String> = ir_core::accounts::session_actions(package)
            .unwrap_or_else(|| panic!("{package} has no session policy"))
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        let at_home = acting_calls(&role_statements(role_of(function_of(package))));
        assert_eq!(
            session, at_home,
            "{package}: its member session's calls differ from its role's at home"
        );
        let missing: Vec<&String> = session.difference(&member).collect();
        assert!(
            missing.is_empty(),
            "the member role lacks {missing:?} for {package}"
        );
        union.extend(session);
    }
    let extra: Vec<&String> = member.difference(&union).collect();
    assert!(
        extra.is_empty(),
        "the member role allows {extra:?}, which no action calls"
    );
    // It changes no role of the suite in its account, itself included.
    assert!(member_statements.iter().any(|s| s["Effect"] == "Deny"
        && items(&s["Resource"]).iter().any(|r| {
            r["Fn::Sub"]
                .as_str()
                .is_some_and(|t| t.ends_with(":role/ir-suite/*"))
        })));
    // The suite's action roles may assume exactly that role, in any account.
    for package in ACTION_PACKAGES {
        let role = role_of(function_of(package));
        let assumable = allowed(role, "sts:AssumeRole");
        assert_eq!(
            assumable,
            BTreeSet::from([canonical(&sub(
                "arn:${AWS::Partition}:iam::*:role/ir-suite/ir-member-responder"
            ))]),
            "{role}"
        );
    }
}
