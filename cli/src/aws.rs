//! What every command that talks to AWS shares: the settings it reads from the environment, the
//! configuration, the runtime with clients from the standard AWS chain, and who the caller is.

use std::path::PathBuf;

use ir_aws::Clients;
use ir_aws::store::TableNames;
use ir_core::Config;

use crate::CliError;

/// A required environment variable; unset is bad usage (exit 2).
pub fn var(name: &'static str) -> Result<String, CliError> {
    ir_env::required(name).map_err(|e| CliError::Invalid(e.to_string()))
}

/// All four table names (`IR_INCIDENTS_TABLE`, `IR_KEYS_TABLE`, `IR_AUDIT_TABLE`,
/// `IR_APPROVALS_TABLE`).
pub fn table_names() -> Result<TableNames, CliError> {
    TableNames::from_env().map_err(|e| CliError::Invalid(e.to_string()))
}

/// The configuration: the file given, else the deployment's source as the functions read it
/// (`IR_CONFIG_SSM_PARAMETER`, `IR_CONFIG_S3_URI` or `IR_CONFIG_FILE`, with the `IR_APPROVERS_*`
/// and `IR_PLAYBOOK_MODE_*` overlay), else the embedded one.
pub fn load_config(path: Option<&PathBuf>) -> Result<Config, CliError> {
    match path {
        Some(p) => {
            let bytes = crate::read_input(p, "config")?;
            let text = String::from_utf8(bytes)
                .map_err(|e| CliError::Invalid(format!("config {}: {e}", p.display())))?;
            Config::from_yaml(&text)
                .map_err(|e| CliError::Invalid(format!("config {}: {e}", p.display())))
        }
        None => {
            let invalid = |e: ir_env::InitError| CliError::Invalid(e.to_string());
            let source = ir_env::ConfigSource::from_env().map_err(invalid)?;
            let overlay = ir_env::Overlay::from_env().map_err(invalid)?;
            if source.is_remote() {
                with_clients(async |clients| {
                    ir_aws::config_source::load_from(&clients, &source, &overlay)
                        .await
                        .map_err(invalid)
                })
            } else {
                ir_env::source::local_config(&source, &overlay).map_err(invalid)
            }
        }
    }
}

/// Runs `work` on a current-thread runtime with clients from the standard AWS configuration
/// chain (profile, environment, SSO).
pub fn with_clients<T>(
    work: impl AsyncFnOnce(Clients) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("starting the runtime: {e}")))?;
    rt.block_on(async {
        let clients = Clients::from_env().await;
        work(clients).await
    })
}

/// Who the credentials belong to, as AWS says.
pub async fn caller_arn(clients: &Clients) -> Result<String, CliError> {
    let out = clients
        .sts()
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "who are you? sts:GetCallerIdentity failed (check your AWS credentials): {}",
                ir_aws::SdkFailure::new("sts:GetCallerIdentity", &e)
            ))
        })?;
    out.arn()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Failed("sts:GetCallerIdentity returned no ARN".to_owned()))
}

/// `incident` is an incident id, or the command is refused as bad usage.
pub fn check_incident_id(incident: &str) -> Result<(), CliError> {
    if ir_core::correlate::is_incident_id(incident) {
        Ok(())
    } else {
        Err(CliError::Invalid(format!(
            "`{incident}` is not an incident id (inc- followed by 20 hex digits)"
        )))
    }
}
