//! Evidence: collect-evidence into the Object Lock bucket.
//!
//! Under `incidents/<incident id>/` in the evidence bucket, one run of a collect-evidence step
//! writes, each as a locked, SHA-256-checksummed object version:
//!
//! 1. `finding/<finding id>.json`: the finding exactly as delivered (the request's raw bytes);
//! 2. `resource/<kind>/<id>.json`: the resource's description at collection time (instances
//!    with their interfaces, security-group rules and volumes; IAM principals with their
//!    policies and access-key metadata; buckets with policy, public access block, versioning,
//!    encryption and tags). A resource that no longer exists is described as absent;
//! 3. `cloudtrail/<original key>`: the CloudTrail log files of the incident window, copied
//!    from the trail bucket (see [`cloudtrail`] for how the window maps to files);
//! 4. last, `manifests/<step id>.json`: every object above with its version id, SHA-256, size,
//!    collection time, collecting identity and source. The manifest is written with
//!    `If-None-Match: *`, so it is created once per step: a second run finds it and reports
//!    `already-in-place` without writing anything; two racing runs cannot both publish one.
//!
//! Nothing is ever deleted or overwritten: the bucket is versioned, every version is locked
//! (`COMPLIANCE` by default: nobody, root included, can delete it or shorten its retention
//! before it expires), and the manifest names versions, not keys. A delete without a version id
//! only hides the current version behind a delete marker; the manifest's versions stay readable.
//!
//! If a run fails part-way (throttling, a lost connection), the versions it wrote stay locked and
//! the error lists them; the retry writes fresh versions and its manifest names those. No
//! manifest ever names a version it did not verify.

mod cloudtrail;
mod describe;
mod join;

mod store;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode};
use ir_core::action::{ActionReport, Artifacts, EvidenceManifest, EvidenceObject, EvidenceRequest};
use ir_core::config::{EvidenceConfig, Mode};
use ir_core::evidence::{
    CloudTrailSummary, CloudTrailWindow, ManifestDocument, ManifestResource, ObjectLockSummary,
};
use ir_core::{Resource, ResourceKind};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use cloudtrail::{TrailLocation, Window};
pub use ir_aws::sha256::{hex, sha256};
pub use ir_core::evidence::MANIFEST_SCHEMA;

use self::cloudtrail::{Listing, LogObject};
use self::describe::Description;
use self::join::{BoxFuture, join_all};
use self::store::{LockedBucket, Upload, Written};
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;
use ir_env::InitError;

/// The function name reported in every collect-evidence report.
pub const ACTION: &str = "ir-collect-evidence";
/// The `schema` of resource descriptions.
pub const DESCRIPTION_SCHEMA: &str = "ir-resource-description/1";
/// Log files copied at once (each a GetObject then a PutObject).
const COPY_CONCURRENCY: usize = 8;
/// The region where CloudTrail records global-service events (IAM, STS global endpoint).
const GLOBAL_EVENTS_REGION: &str = "us-east-1";

/// Where evidence goes and how it is kept, read once at init.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// The evidence bucket: created with Object Lock enabled (hence versioned).
    pub bucket: String,
    /// The trail bucket, `bucket` or `bucket/<path before the account folder>` (for a trail
    /// with a key prefix, `bucket/<prefix>/AWSLogs`; for an organization trail,
    /// `bucket/AWSLogs/<org id>`). `None`: no CloudTrail logs are collected, and reports say so.
    pub trail_bucket: Option<String>,
    pub config: EvidenceConfig,
    /// The identity evidence is collected by, fetched once (STS GetCallerIdentity) on the first
    /// enforce run and shared by clones.
    pub caller: CallerIdentity,
}

impl EvidenceSettings {
    /// These settings for the step `req` runs: the log window before the finding's first
    /// activity is the step's own `retention` (`cloud:fetch_audit_logs` with `retention: 7d`) as
    /// the incident's recorded plan holds it — the suite's record, never the request — else
    /// `evidence.cloudtrail_window_before`. An unknown incident or step keeps the default (the
    /// guard refuses such an enforce request anyway).
    ///
    /// Calls: `GetItem` (the incident).
    pub async fn for_step(
        &self,
        clients: &Clients,
        names: &ir_aws::store::TableNames,
        req: &EvidenceRequest,
    ) -> Result<EvidenceSettings, ActionError> {
        let incident = ir_aws::store::IncidentStore::new(clients.clone(), names.clone())
            .get(&req.incident_id)
            .await?;
        let retention = incident
            .as_ref()
            .and_then(|i| i.decision.as_ref())
            .and_then(|d| d.playbook.steps.iter().find(|s| s.id == req.step_id))
            .and_then(|s| s.retention.as_deref());
        let mut settings = self.clone();
        if let Some(text) = retention {
            let window: ir_core::duration::ConfigDuration = text.parse().map_err(|e| {
                ActionError::Configuration(format!(
                    "step {}'s recorded retention: {e}",
                    req.step_id
                ))
            })?;
            settings.config.cloudtrail_window_before = window;
        }
        Ok(settings)
    }
}

/// The caller ARN, fetched once per process and cached.
#[derive(Debug, Clone, Default)]
pub struct CallerIdentity(Arc<OnceLock<String>>);

impl CallerIdentity {
    /// A known identity: no STS call is made.
    pub fn known(arn: impl Into<String>) -> CallerIdentity {
        let cell = OnceLock::new();
        let _ = cell.set(arn.into());
        CallerIdentity(Arc::new(cell))
    }

    /// The identity, once fetched.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

impl EvidenceSettings {
    /// Settings with an identity still to be fetched.
    pub fn new(
        bucket: impl Into<String>,
        trail_bucket: Option<String>,
        config: EvidenceConfig,
    ) -> EvidenceSettings {
        EvidenceSettings {
            bucket: bucket.into(),
            trail_bucket,
            config,
            caller: CallerIdentity::default(),
        }
    }

    /// `IR_EVIDENCE_BUCKET` (required), `IR_TRAIL_BUCKET` (optional), and the `evidence` section
    /// of the deployed configuration (loaded once at init by `ir_aws::config_source`).
    pub fn from_env(config: EvidenceConfig) -> Result<EvidenceSettings, InitError> {
        let bucket = ir_env::required("IR_EVIDENCE_BUCKET")?;
        check_bucket_name(&bucket).map_err(|message| InitError::Var {
            name: "IR_EVIDENCE_BUCKET",
            message,
        })?;
        let trail_bucket = ir_env::optional("IR_TRAIL_BUCKET")?;
        if let Some(t) = &trail_bucket {
            TrailLocation::parse(t).map_err(|message| InitError::Var {
                name: "IR_TRAIL_BUCKET",
                message,
            })?;
        }
        let settings = EvidenceSettings::new(bucket, trail_bucket, config);
        settings.lock_mode().map_err(|message| InitError::Config {
            origin: "evidence section".to_owned(),
            message,
        })?;
        Ok(settings)
    }

    /// The Object Lock mode, checked (COMPLIANCE or GOVERNANCE, at least one day).
    fn lock_mode(&self) -> Result<ObjectLockMode, String> {
        if self.config.retention_days == 0 {
            return Err("evidence.retention_days must be at least 1".into());
        }
        match self.config.object_lock_mode.as_str() {
            "COMPLIANCE" => Ok(ObjectLockMode::Compliance),
            "GOVERNANCE" => Ok(ObjectLockMode::Governance),
            other => Err(format!(
                "evidence.object_lock_mode `{other}` is neither COMPLIANCE nor GOVERNANCE"
            )),
        }
    }

    fn trail(&self) -> Result<Option<TrailLocation>, String> {
        self.trail_bucket
            .as_deref()
            .map(TrailLocation::parse)
            .transpose()
    }
}

/// S3 bucket naming rules, enough to refuse a mistyped setting at init.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid S3 bucket name"))
    }
}

/// The keys of one run.
#[derive(Debug, Clone)]
struct Keys {
    finding: String,
    description: String,
    manifest: String,
    cloudtrail_root: String,
}

impl Keys {
    fn new(req: &EvidenceRequest) -> Keys {
        let root = format!("incidents/{}", req.incident_id);
        Keys {
            finding: format!("{root}/finding/{}.json", key_segment(&req.finding_id)),
            description: format!(
                "{root}/resource/{}/{}.json",
                req.resource.kind(),
                key_segment(req.resource.id())
            ),
            manifest: format!("{root}/manifests/{}.json", key_segment(&req.step_id)),
            cloudtrail_root: format!("{root}/cloudtrail/"),
        }
    }
}

/// An identifier as one key segment: characters outside `[A-Za-z0-9._-]` become `_`; when that
/// changed anything (or the segment would be empty, hidden or too long), a digest of the original
/// is appended so distinct identifiers never share a key.
fn key_segment(id: &str) -> String {
    let mut seg: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if seg != id || seg.is_empty() || seg.starts_with('.') || seg.len() > 200 {
        seg.truncate(160);
        let digest = hex(&sha256(id.as_bytes()));
        seg = format!("{}-{}", seg.trim_start_matches('.'), &digest[..16]);
    }
    seg
}

/// One object to collect.
#[derive(Debug)]
enum Item {
    /// Bytes built here (the finding, the description).
    Inline { key: String, bytes: Vec<u8> },
    /// A log file copied from the trail bucket.
    Log { key: String, object: LogObject },
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::Inline { key, .. } | Item::Log { key, .. } => key,
        }
    }
}

/// Collects the evidence of one incident for one playbook step; see the module docs.
///
/// Dry-run reads everything a run would collect (resource description, log listing) and checks
/// that the bucket has Object Lock enabled, then returns the objects it would write (key, size,
/// source) as planned changes without writing anything.
pub async fn collect_evidence(
    clients: &Clients,
    settings: &EvidenceSettings,
    req: &EvidenceRequest,
) -> Result<ActionReport, ActionError> {
    collect_evidence_at(clients, clients, settings, req).await
}

/// [`collect_evidence`] of a resource elsewhere: `clients` write the evidence, list the trail
/// and say who collected (the security account's), `at` describe the resource (in its account
/// and region, through the member role for a member account).
pub async fn collect_evidence_at(
    clients: &Clients,
    at: &Clients,
    settings: &EvidenceSettings,
    req: &EvidenceRequest,
) -> Result<ActionReport, ActionError> {
    validate(req)?;
    let mode = settings.lock_mode().map_err(ActionError::Configuration)?;
    let trail = settings.trail().map_err(ActionError::Configuration)?;
    check_bucket_name(&settings.bucket).map_err(ActionError::Configuration)?;
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        ACTION,
        req.mode,
        clients.calls().count(),
    );
    let keys = Keys::new(req);

    // Already collected for this step? Then nothing is written, in either mode.
    if let Some(existing) = existing_manifest(clients, &settings.bucket, &keys.manifest).await? {
        report.note(format!(
            "evidence for step {} was already collected: manifest s3://{}/{} version {} lists {} objects; nothing written",
            req.step_id,
            settings.bucket,
            keys.manifest,
            existing.manifest.manifest_version_id,
            existing.manifest.objects.len()
        ));
        if existing.hidden_by_delete_marker {
            report.note(format!(
                "the manifest's current version is a delete marker (a delete without a version id); the locked version {} is intact",
                existing.manifest.manifest_version_id
            ));
        }
        report.report_mut().artifacts = Some(Artifacts::Evidence(existing.manifest));
        return Ok(report.finish(clients.calls()));
    }

    // Everything to read, concurrently: the description, the log listing, and (enforce) who
    // collects; in dry-run, the bucket's Object Lock instead of the identity.
    let window = Window::new(
        req.first_seen.unix_timestamp(),
        req.last_seen.unix_timestamp(),
        settings.config.cloudtrail_window_before.as_secs(),
        settings.config.cloudtrail_window_after.as_secs(),
    );
    let regions = trail_regions(req);
    let (description, listing, collector) =
        read_phase(clients, at, settings, req, trail.as_ref(), &regions, window).await?;

    // What to collect.
    let mut items = vec![Item::Inline {
        key: keys.finding.clone(),
        bytes: req.finding.get().as_bytes().to_vec(),
    }];
    match &description {
        Some(d) => {
            items.push(Item::Inline {
                key: keys.description.clone(),
                bytes: description_bytes(req, d),
            });
            if !d.found {
                let code = d
                    .body
                    .get("notFound")
                    .and_then(|n| n.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("not found");
                report.note(format!(
                    "{} {} was not found at collection time ({code}); its absence is recorded in {}",
                    req.resource.kind(),
                    req.resource.id(),
                    keys.description
                ));
            }
        }
        None => report.note(format!(
            "no description is collected for {} resources ({})",
            req.resource.kind(),
            req.resource.id()
        )),
    }
    let mut cloudtrail_summary = CloudTrailSummary::default();
    match (&trail, listing) {
        (Some(location), Some(listing)) => {
            let found = listing.objects.len();
            let max = usize::try_from(settings.config.max_log_objects).unwrap_or(usize::MAX);
            let mut objects = listing.objects;
            let left_out = objects.split_off(found.min(max));
            report.note(format!(
                "CloudTrail window {} to {} (files stamped {} to {}), regions {}: {} log files found in {} day folders of s3://{} ({} objects listed)",
                cloudtrail::rfc3339(window.start),
                cloudtrail::rfc3339(window.end),
                cloudtrail::rfc3339(window.earliest_stamp()),
                cloudtrail::rfc3339(window.latest_stamp()),
                regions.join(", "),
                found,
                listing.prefixes.len(),
                location.bucket,
                listing.listed
            ));
            if regions.len() > 1 {
                report.note(format!("IAM is a global service: its API calls are logged in {GLOBAL_EVENTS_REGION}, so that region's logs are collected too"));
            }
            if let (Some(first), Some(last)) = (left_out.first(), left_out.last()) {
                report.note(format!(
                    "{} of the {found} log files of the window were NOT copied (evidence.max_log_objects = {max}): those stamped {} to {}, from {} on",
                    left_out.len(),
                    cloudtrail::rfc3339(first.stamp),
                    cloudtrail::rfc3339(last.stamp),
                    location.uri(&first.key)
                ));
            }
            cloudtrail_summary = CloudTrailSummary {
                collected: true,
                window: Some(CloudTrailWindow {
                    files_in_window: count(found),
                    files_left_out: count(left_out.len()),
                    max_log_objects: count(max),
                    objects_listed: count(listing.listed),
                    prefixes: listing.prefixes,
                    regions: regions.clone(),
                    stamps_from: cloudtrail::rfc3339(window.earliest_stamp()),
                    stamps_to: cloudtrail::rfc3339(window.latest_stamp()),
                    trail_bucket: location.bucket.clone(),
                    window_end: cloudtrail::rfc3339(window.end),
                    window_start: cloudtrail::rfc3339(window.start),
                }),
            };
            for object in objects {
                items.push(Item::Log { key: format!("{}{}", keys.cloudtrail_root, object.key), object });
            }
        }
        _ => report.note("IR_TRAIL_BUCKET is not set: no CloudTrail logs were collected (only the finding and the resource description)"),
    }

    if req.mode == Mode::DryRun {
        for item in &items {
            let planned = match item {
                Item::Inline { key, bytes } => {
                    json!({"key": key, "size": bytes.len(), "sha256": hex(&sha256(bytes))})
                }
                Item::Log { key, object } => {
                    json!({"key": key, "size": object.size, "source": trail.as_ref().map(|t| t.uri(&object.key))})
                }
            };
            report.change(
                s3_uri(&settings.bucket, item.key()),
                "evidence-object",
                Value::Null,
                planned,
            );
        }
        report.change(
            s3_uri(&settings.bucket, &keys.manifest),
            "evidence-object",
            Value::Null,
            json!({"key": keys.manifest, "manifestOf": items.len()}),
        );
        report.note(format!(
            "dry-run: would write {} objects and the manifest, locked in {} mode for {}; nothing written",
            items.len(),
            settings.config.object_lock_mode,
            days(settings.config.retention_days)
        ));
        return Ok(report.finish(clients.calls()));
    }

    let collector = collector.unwrap_or_default();
    let bucket = LockedBucket {
        clients,
        bucket: &settings.bucket,
        mode: mode.clone(),
        retention_days: settings.config.retention_days,
    };
    let mut objects: Vec<EvidenceObject> = Vec::with_capacity(items.len());
    let mut pending = items.into_iter().peekable();
    while pending.peek().is_some() {
        let batch: Vec<Item> = pending.by_ref().take(COPY_CONCURRENCY).collect();
        let futures: Vec<BoxFuture<'_, Result<Collected, ActionError>>> = batch
            .into_iter()
            .map(|item| {
                Box::pin(collect_item(
                    &bucket,
                    trail.as_ref(),
                    &req.incident_id,
                    item,
                )) as BoxFuture<'_, _>
            })
            .collect();
        let mut failure = None;
        for result in join_all(futures).await {
            match result {
                Ok(Collected::Written {
                    key,
                    written,
                    source,
                }) => {
                    report.change(s3_uri(&settings.bucket, &key), "evidence-object", Value::Null, json!({"key": key, "versionId": written.version_id, "sha256": written.sha256}));
                    objects.push(evidence_object(key, written, source, &collector));
                }
                // CloudTrail never rewrites a delivered file, but a lifecycle rule may expire it.
                Ok(Collected::Vanished(source)) => report.note(format!(
                    "{source} was listed but no longer existed when it was copied"
                )),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e.after(&report.snapshot(clients.calls())));
        }
    }

    // The manifest, last.
    let document = ManifestDocument {
        schema: MANIFEST_SCHEMA.to_owned(),
        bucket: settings.bucket.clone(),
        incident_id: req.incident_id.clone(),
        finding_id: req.finding_id.clone(),
        step_id: req.step_id.clone(),
        account: req.account.clone(),
        region: req.region.clone(),
        resource: ManifestResource {
            id: req.resource.id().to_owned(),
            kind: req.resource.kind().as_str().to_owned(),
        },
        collected_by: collector,
        completed_at: now(),
        object_lock: ObjectLockSummary {
            mode: settings.config.object_lock_mode.clone(),
            retention_days: settings.config.retention_days,
        },
        cloudtrail: cloudtrail_summary,
        objects,
        notes: report.report_mut().notes.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&document)
        .map_err(|e| ActionError::Verification(format!("manifest serialization: {e}")))?;
    let objects = document.objects;
    let written = bucket
        .put(Upload {
            key: &keys.manifest,
            bytes,
            content_type: "application/json",
            content_encoding: None,
            metadata: vec![("ir-incident-id", req.incident_id.clone())],
            create_only: true,
        })
        .await
        .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
    report.change(
        s3_uri(&settings.bucket, &keys.manifest),
        "evidence-object",
        Value::Null,
        json!({"key": keys.manifest, "versionId": written.version_id, "sha256": written.sha256}),
    );
    verify_lock(
        clients,
        &settings.bucket,
        &keys.manifest,
        &written,
        &mode,
        settings.config.retention_days,
    )
    .await
    .map_err(|e| e.after(&report.snapshot(clients.calls())))?;

    report.note(format!(
        "{} objects and the manifest written to s3://{}/incidents/{}/, locked in {} mode for {}; manifest {} version {}",
        objects.len(),
        settings.bucket,
        req.incident_id,
        settings.config.object_lock_mode,
        days(settings.config.retention_days),
        keys.manifest,
        written.version_id
    ));
    report.report_mut().artifacts = Some(Artifacts::Evidence(EvidenceManifest {
        bucket: settings.bucket.clone(),
        incident_id: req.incident_id.clone(),
        objects,
        manifest_key: keys.manifest,
        manifest_version_id: written.version_id,
    }));
    Ok(report.finish(clients.calls()))
}

fn s3_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn days(n: u32) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn now_rfc3339() -> String {
    cloudtrail::rfc3339(now_secs())
}

/// Now, in whole seconds (the manifest's `completedAt`, as [`now_rfc3339`] writes it).
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(now_secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A count as the manifest writes it.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn validate(req: &EvidenceRequest) -> Result<(), ActionError> {
    if !ir_core::correlate::is_incident_id(&req.incident_id) {
        return Err(ActionError::InvalidInput(format!(
            "`{}` is not an incident id",
            req.incident_id
        )));
    }
    if req.step_id.trim().is_empty() {
        return Err(ActionError::InvalidInput("stepId is empty".into()));
    }
    if req.finding_id.trim().is_empty() {
        return Err(ActionError::InvalidInput("findingId is empty".into()));
    }
    if req.account.len() != 12 || !req.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ActionError::InvalidInput(format!(
            "account `{}` is not a 12-digit AWS account id",
            req.account
        )));
    }
    if req.region.is_empty()
        || req.region.len() > 32
        || !req
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ActionError::InvalidInput(format!(
            "region `{}` is not an AWS region name",
            req.region
        )));
    }
    if req.first_seen > req.last_seen {
        return Err(ActionError::InvalidInput(format!(
            "firstSeen {} is after lastSeen {}",
            req.first_seen, req.last_seen
        )));
    }
    Ok(())
}

/// The regions whose logs are collected: the finding's, plus us-east-1 for IAM principals (IAM
/// is global: CloudTrail records its API calls in us-east-1).
fn trail_regions(req: &EvidenceRequest) -> Vec<String> {
    let mut regions = vec![req.region.clone()];
    if matches!(
        req.resource.kind(),
        ResourceKind::IamRole | ResourceKind::IamUser
    ) && req.region != GLOBAL_EVENTS_REGION
    {
        regions.push(GLOBAL_EVENTS_REGION.to_owned());
    }
    regions
}

enum ReadPart {
    Description(Option<Description>),
    Listing(Option<Listing>),
    Collector(Option<String>),
}

type ReadPhase = (Option<Description>, Option<Listing>, Option<String>);

async fn read_phase(
    clients: &Clients,
    at: &Clients,
    settings: &EvidenceSettings,
    req: &EvidenceRequest,
    trail: Option<&TrailLocation>,
    regions: &[String],
    window: Window,
) -> Result<ReadPhase, ActionError> {
    let describe = async {
        describe::describe(at, &req.resource)
            .await
            .map(ReadPart::Description)
    };
    let list = async {
        match trail {
            Some(location) => {
                cloudtrail::list_window(clients, location, &req.account, regions, window)
                    .await
                    .map(|l| ReadPart::Listing(Some(l)))
            }
            None => Ok(ReadPart::Listing(None)),
        }
    };
    let who = async {
        if req.mode == Mode::DryRun {
            check_object_lock(clients, &settings.bucket)
                .await
                .map(|()| ReadPart::Collector(None))
        } else {
            caller_identity(clients, &settings.caller)
                .await
                .map(|arn| ReadPart::Collector(Some(arn)))
        }
    };
    let parts: Vec<BoxFuture<'_, Result<ReadPart, ActionError>>> =
        vec![Box::pin(describe), Box::pin(list), Box::pin(who)];
    let (mut description, mut listing, mut collector) = (None, None, None);
    for part in join_all(parts).await {
        match part? {
            ReadPart::Description(d) => description = d,
            ReadPart::Listing(l) => listing = l,
            ReadPart::Collector(c) => collector = c,
        }
    }
    Ok((description, listing, collector))
}

/// The caller ARN: STS GetCallerIdentity on first use, cached afterwards.
async fn caller_identity(clients: &Clients, cache: &CallerIdentity) -> Result<String, ActionError> {
    if let Some(arn) = cache.get() {
        return Ok(arn.to_owned());
    }
    let out = clients
        .sts()
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| ActionError::sdk("sts:GetCallerIdentity", e))?;
    let arn = out.arn().unwrap_or("unknown").to_owned();
    Ok(cache.0.get_or_init(|| arn).clone())
}

/// Dry-run's proof that enforce can lock: the bucket exists and has Object Lock enabled (which
/// implies versioning).
async fn check_object_lock(clients: &Clients, bucket: &str) -> Result<(), ActionError> {
    match clients
        .s3()
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out)
            if out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled) =>
        {
            Ok(())
        }
        Ok(_) => Err(ActionError::Configuration(format!(
            "the evidence bucket `{bucket}` does not have Object Lock enabled: evidence cannot be locked there"
        ))),
        Err(e) => {
            let code = e.code().map(str::to_owned);
            let err = ActionError::sdk("s3:GetObjectLockConfiguration", e);
            match code.as_deref() {
                Some("NoSuchBucket") => Err(ActionError::Configuration(format!(
                    "the evidence bucket `{bucket}` does not exist (IR_EVIDENCE_BUCKET): {err}"
                ))),
                Some("ObjectLockConfigurationNotFoundError") => {
                    Err(ActionError::Configuration(format!(
                        "the evidence bucket `{bucket}` does not have Object Lock enabled: evidence cannot be locked there"
                    )))
                }
                _ => Err(err),
            }
        }
    }
}

/// An existing manifest of the step.
struct Existing {
    manifest: EvidenceManifest,
    hidden_by_delete_marker: bool,
}

/// Finds the step's manifest by listing its versions (not HeadObject: a manifest hidden behind a
/// delete marker still exists and must be found, not collected again), then reads the newest.
async fn existing_manifest(
    clients: &Clients,
    bucket: &str,
    key: &str,
) -> Result<Option<Existing>, ActionError> {
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    let (mut newest, mut marker_is_latest) = (None::<String>, false);
    loop {
        let page = clients
            .s3()
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| {
                let missing = e.code() == Some("NoSuchBucket");
                let err = ActionError::sdk("s3:ListObjectVersions", e);
                if missing {
                    ActionError::Configuration(format!(
                        "the evidence bucket `{bucket}` does not exist (IR_EVIDENCE_BUCKET): {err}"
                    ))
                } else {
                    err
                }
            })?;
        // Versions of one key are listed newest first.
        if newest.is_none() {
            newest = page
                .versions()
                .iter()
                .find(|v| v.key() == Some(key))
                .and_then(|v| v.version_id())
                .map(str::to_owned);
        }
        marker_is_latest |= page
            .delete_markers()
            .iter()
            .any(|m| m.key() == Some(key) && m.is_latest() == Some(true));
        match (page.is_truncated(), page.next_key_marker()) {
            (Some(true), Some(next)) if newest.is_none() || next == key => {
                key_marker = Some(next.to_owned());
                version_marker = page.next_version_id_marker().map(str::to_owned);
            }
            _ => break,
        }
    }
    let Some(version_id) = newest else {
        return Ok(None);
    };
    let Some(fetched) = store::fetch(clients, bucket, key, Some(&version_id)).await? else {
        return Err(ActionError::Verification(format!(
            "s3://{bucket}/{key} version {version_id} was listed but cannot be read"
        )));
    };
    let stored: ManifestDocument = serde_json::from_slice(&fetched.bytes).map_err(|e| {
        ActionError::Verification(format!(
            "s3://{bucket}/{key} version {version_id} exists but is not a readable manifest: {e}"
        ))
    })?;
    if stored.schema != MANIFEST_SCHEMA {
        return Err(ActionError::Verification(format!(
            "s3://{bucket}/{key} version {version_id} has schema `{}`, not {MANIFEST_SCHEMA}",
            stored.schema
        )));
    }
    Ok(Some(Existing {
        manifest: EvidenceManifest {
            bucket: stored.bucket,
            incident_id: stored.incident_id,
            objects: stored.objects,
            manifest_key: key.to_owned(),
            manifest_version_id: version_id,
        },
        hidden_by_delete_marker: marker_is_latest,
    }))
}

fn description_bytes(req: &EvidenceRequest, d: &Description) -> Vec<u8> {
    let mut doc = d.body.clone();
    doc.insert("schema".into(), json!(DESCRIPTION_SCHEMA));
    doc.insert("resource".into(), resource_ref(&req.resource));
    doc.insert("found".into(), json!(d.found));
    doc.insert("describedAt".into(), json!(now_rfc3339()));
    doc.insert("account".into(), json!(req.account));
    doc.insert("region".into(), json!(req.region));
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn resource_ref(resource: &Resource) -> Value {
    json!({"kind": resource.kind().as_str(), "id": resource.id()})
}

/// What became of one item.
enum Collected {
    Written {
        key: String,
        written: Written,
        source: Option<String>,
    },
    /// A listed log file that was gone when it was read.
    Vanished(String),
}

/// Writes one item. Log files are copied by GetObject + PutObject, not CopyObject: the suite
/// must compute the SHA-256 itself over the exact bytes it stores (CopyObject would only return
/// S3's own checksum of the copy, and the emulator refuses CopyObject with Object Lock
/// parameters, `MissingUploadObjectWithObjectLockHeaders`, so it could not be tested). The
/// bytes pass through the function's memory once; CloudTrail files are small (a few MB at most).
async fn collect_item(
    bucket: &LockedBucket<'_>,
    trail: Option<&TrailLocation>,
    incident_id: &str,
    item: Item,
) -> Result<Collected, ActionError> {
    match item {
        Item::Inline { key, bytes } => {
            let written = bucket
                .put(Upload {
                    key: &key,
                    bytes,
                    content_type: "application/json",
                    content_encoding: None,
                    metadata: vec![("ir-incident-id", incident_id.to_owned())],
                    create_only: false,
                })
                .await?;
            Ok(Collected::Written {
                key,
                written,
                source: None,
            })
        }
        Item::Log { key, object } => {
            let Some(location) = trail else {
                return Ok(Collected::Vanished(object.key));
            };
            let Some(fetched) =
                store::fetch(bucket.clients, &location.bucket, &object.key, None).await?
            else {
                tracing::warn!(source = %location.uri(&object.key), "log file listed but gone before copy");
                return Ok(Collected::Vanished(location.uri(&object.key)));
            };
            let mut source = location.uri(&object.key);
            if let Some(v) = &fetched.version_id {
                source = format!("{source}?versionId={v}");
            }
            let mut metadata = vec![("ir-incident-id", incident_id.to_owned())];
            if source.is_ascii() {
                metadata.push(("ir-source", source.clone()));
            }
            let content_type = fetched
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            let written = bucket
                .put(Upload {
                    key: &key,
                    bytes: fetched.bytes,
                    content_type,
                    content_encoding: fetched.content_encoding.clone(),
                    metadata,
                    create_only: false,
                })
                .await?;
            Ok(Collected::Written {
                key,
                written,
                source: Some(source),
            })
        }
    }
}

fn evidence_object(
    key: String,
    written: Written,
    source: Option<String>,
    collector: &str,
) -> EvidenceObject {
    EvidenceObject {
        key,
        version_id: written.version_id,
        sha256: written.sha256,
        size: written.size,
        collected_at: written.at.into(),
        collected_by: collector.to_owned(),
        source,
    }
}

/// Reads the manifest version back: it must carry the requested lock mode and at least the
/// requested retention.
async fn verify_lock(
    clients: &Clients,
    bucket: &str,
    key: &str,
    written: &Written,
    mode: &ObjectLockMode,
    retention_days: u32,
) -> Result<(), ActionError> {
    let head = clients
        .s3()
        .head_object()
        .bucket(bucket)
        .key(key)
        .version_id(&written.version_id)
        .send()
        .await
        .map_err(|e| ActionError::sdk("s3:HeadObject", e))?;
    let written_secs = written
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let wanted =
        i64::try_from(written_secs + u64::from(retention_days) * 86_400).unwrap_or(i64::MAX) - 1;
    let until = head.object_lock_retain_until_date().map(|d| d.secs());
    if head.object_lock_mode() != Some(mode) || until.is_none_or(|u| u < wanted) {
        return Err(ActionError::Verification(format!(
            "s3://{bucket}/{key} version {} reads back with lock {:?} until {:?}, not {} until at least {}",
            written.version_id,
            head.object_lock_mode().map(ObjectLockMode::as_str),
            until.map(cloudtrail::rfc3339),
            mode.as_str(),
            cloudtrail::rfc3339(wanted)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_are_safe_and_distinct() {
        assert_eq!(key_segment("7ab0c1d2e3f4"), "7ab0c1d2e3f4");
        assert_eq!(key_segment("collect-evidence"), "collect-evidence");
        let arn = key_segment("arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/f");
        assert!(
            arn.starts_with("arn_aws_guardduty_us-east-1_123456789012_detector_d_finding_f-"),
            "{arn}"
        );
        assert_ne!(key_segment("a/b"), key_segment("a:b"));
        assert!(!key_segment("..").starts_with('.'));
        assert!(!key_segment("").is_empty());
        assert!(key_segment(&"x".repeat(500)).len() <= 180);
    }

    /// The manifest as the writer serialized it before [`ManifestDocument`] was one type: borrowed
    /// fields and `json!` objects.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct LegacyManifest<'a> {
        schema: &'static str,
        bucket: &'a str,
        incident_id: &'a str,
        finding_id: &'a str,
        step_id: &'a str,
        account: &'a str,
        region: &'a str,
        resource: Value,
        collected_by: &'a str,
        completed_at: String,
        object_lock: Value,
        cloudtrail: Value,
        objects: &'a [EvidenceObject],
        notes: &'a [String],
    }

    #[test]
    fn the_manifest_bytes_are_those_written_before() {
        let at = 1_795_000_000;
        let objects = vec![
            EvidenceObject {
                key: "incidents/inc-0123456789abcdef0123/finding/f1.json".into(),
                version_id: "v1".into(),
                sha256: hex(&sha256(b"finding")),
                size: 7,
                collected_at: OffsetDateTime::from_unix_timestamp(at - 5).unwrap(),
                collected_by: "arn:aws:sts::111122223333:assumed-role/ir/x".into(),
                source: None,
            },
            EvidenceObject {
                key: "incidents/inc-0123456789abcdef0123/cloudtrail/AWSLogs/x.json.gz".into(),
                version_id: "v2".into(),
                sha256: hex(&sha256(b"log")),
                size: 3,
                collected_at: OffsetDateTime::from_unix_timestamp(at - 1).unwrap(),
                collected_by: "arn:aws:sts::111122223333:assumed-role/ir/x".into(),
                source: Some("s3://trail/AWSLogs/x.json.gz?versionId=null".into()),
            },
        ];
        let notes = vec![
            "one note".to_owned(),
            "a \"quoted\" ünïcode note".to_owned(),
        ];
        let (found, left_out, max, listed) = (3_usize, 1_usize, 2_usize, 1234_usize);
        let prefixes = vec!["AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/17/".to_owned()];
        let regions = vec!["us-east-1".to_owned(), "eu-west-1".to_owned()];
        let legacy_trail = json!({
            "collected": true,
            "trailBucket": "trail",
            "prefixes": prefixes,
            "windowStart": cloudtrail::rfc3339(at - 3600),
            "windowEnd": cloudtrail::rfc3339(at + 600),
            "stampsFrom": cloudtrail::rfc3339(at - 3900),
            "stampsTo": cloudtrail::rfc3339(at + 900),
            "regions": regions,
            "objectsListed": listed,
            "filesInWindow": found,
            "filesLeftOut": left_out,
            "maxLogObjects": max,
        });
        let trail = CloudTrailSummary {
            collected: true,
            window: Some(CloudTrailWindow {
                files_in_window: count(found),
                files_left_out: count(left_out),
                max_log_objects: count(max),
                objects_listed: count(listed),
                prefixes: prefixes.clone(),
                regions: regions.clone(),
                stamps_from: cloudtrail::rfc3339(at - 3900),
                stamps_to: cloudtrail::rfc3339(at + 900),
                trail_bucket: "trail".into(),
                window_end: cloudtrail::rfc3339(at + 600),
                window_start: cloudtrail::rfc3339(at - 3600),
            }),
        };
        for (legacy_cloudtrail, cloudtrail) in [
            (json!({"collected": false}), CloudTrailSummary::default()),
            (legacy_trail, trail),
        ] {
            let legacy = LegacyManifest {
                schema: MANIFEST_SCHEMA,
                bucket: "ev-bucket",
                incident_id: "inc-0123456789abcdef0123",
                finding_id: "f1",
                step_id: "collect-evidence",
                account: "111122223333",
                region: "us-east-1",
                resource: json!({"kind": "ec2-instance", "id": "i-0123456789abcdef0"}),
                collected_by: "arn:aws:sts::111122223333:assumed-role/ir/x",
                completed_at: cloudtrail::rfc3339(at),
                object_lock: json!({"mode": "COMPLIANCE", "retentionDays": 365}),
                cloudtrail: legacy_cloudtrail,
                objects: &objects,
                notes: &notes,
            };
            let document = ManifestDocument {
                schema: MANIFEST_SCHEMA.to_owned(),
                bucket: "ev-bucket".into(),
                incident_id: "inc-0123456789abcdef0123".into(),
                finding_id: "f1".into(),
                step_id: "collect-evidence".into(),
                account: "111122223333".into(),
                region: "us-east-1".into(),
                resource: ManifestResource {
                    id: "i-0123456789abcdef0".into(),
                    kind: "ec2-instance".into(),
                },
                collected_by: "arn:aws:sts::111122223333:assumed-role/ir/x".into(),
                completed_at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
                object_lock: ObjectLockSummary {
                    mode: "COMPLIANCE".into(),
                    retention_days: 365,
                },
                cloudtrail,
                objects: objects.clone(),
                notes: notes.clone(),
            };
            let before = serde_json::to_vec_pretty(&legacy).unwrap();
            let now = serde_json::to_vec_pretty(&document).unwrap();
            assert_eq!(
                String::from_utf8(now).unwrap(),
                String::from_utf8(before.clone()).unwrap()
            );
            let back: ManifestDocument = serde_json::from_slice(&before).unwrap();
            assert_eq!(back, document);
        }
    }

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("ir-evidence-123").is_ok());
        assert!(check_bucket_name("ir.evidence").is_ok());
        for bad in [
            "",
            "ab",
            "IR-Evidence",
            "ir_evidence",
            "-ir",
            "ir-",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
