//! The audit log: the hash chain of `ir_core::audit` in DynamoDB, anchored in the Object Lock
//! evidence bucket.
//!
//! One item per record (`incidentId`, `seq`). An append reads the head (strongly consistent
//! `Query`, newest first, `Limit 1`), builds the next record on it and puts it only if that
//! `seq` does not exist yet: two writers racing for one `seq` cannot both win, so the chain has
//! no overwrite and no gap; the loser re-reads the head and chains on the winner.
//!
//! `detail` is stored as its canonical JSON text (a string attribute), not as a DynamoDB map:
//! numbers in maps lose the difference between `1` and `1.0`, and the hash is over the
//! canonical text, so the text must come back exactly.
//!
//! DynamoDB alone cannot prove that nothing was removed from the end of the chain (a valid
//! prefix verifies). [`AuditLog::anchor`] writes the chain head to the evidence bucket as a
//! locked object version (COMPLIANCE by default: nobody can delete or overwrite it before its
//! retention ends); [`AuditLog::verify`] checks the chain against every anchor ever written.
//! Anchors are found with `ListObjectVersions`, not `ListObjectsV2`: a `DeleteObject` without a
//! version id only hides the current version behind a delete marker, and must not hide an
//! anchor from verification.

use std::time::SystemTime;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use ir_core::audit::{Anchor, AuditEvent, AuditRecord, ChainError, Verified, canonical_json};
use ir_core::config::EvidenceConfig;
use ir_core::{ErrorName, Named};
use thiserror::Error;
use time::OffsetDateTime;

use super::expr::Expr;
use super::item::{Item, Reader, n, s};
use super::retry::Attempts;
use super::schema::TableNames;
use super::{StoreError, check_incident_id, stamp};
use crate::locked::{self, LockedError, LockedObject, PutRefusal};
use crate::{Clients, SdkFailure};

/// Attempts at one append before `Conflict`.
const APPEND_ATTEMPTS: u32 = 10;

const QUERY: &str = "dynamodb:Query";
const PUT: &str = "dynamodb:PutItem";
const PUT_OBJECT: &str = "s3:PutObject";
const HEAD_OBJECT: &str = "s3:HeadObject";
const GET_OBJECT: &str = "s3:GetObject";
const LIST_VERSIONS: &str = "s3:ListObjectVersions";

mod attr {
    pub const INCIDENT_ID: &str = "incidentId";
    pub const SEQ: &str = "seq";
    pub const AT: &str = "at";
    pub const ACTOR: &str = "actor";
    pub const ACTION: &str = "action";
    pub const DETAIL: &str = "detail";
    pub const PREV_HASH: &str = "prevHash";
    pub const HASH: &str = "hash";
}

/// Why a chain does not verify.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The records or the anchors show editing, deletion, insertion, reordering or truncation.
    #[error("the audit chain of {incident_id} does not verify: {error}")]
    Chain {
        incident_id: String,
        error: ChainError,
    },
    /// A record's item does not even have the shape of a record (edited by hand).
    #[error("audit record {seq} of {incident_id} is unreadable: {why}")]
    Unreadable {
        incident_id: String,
        seq: u64,
        why: String,
    },
    /// The chain or the anchors could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Named for VerifyError {
    fn error_name(&self) -> ErrorName {
        match self {
            VerifyError::Chain { .. } | VerifyError::Unreadable { .. } => {
                ErrorName::VerificationFailed
            }
            VerifyError::Store(e) => e.error_name(),
        }
    }
}

/// The audit chains of all incidents.
#[derive(Debug, Clone)]
pub struct AuditLog {
    clients: Clients,
    names: TableNames,
}

/// The key of an anchor object.
fn anchor_key(incident_id: &str, seq: u64, reason: &str) -> String {
    format!("{}{seq}-{reason}.json", anchor_prefix(incident_id))
}

fn anchor_prefix(incident_id: &str) -> String {
    format!("incidents/{incident_id}/audit/anchor-")
}

/// A record's item (`detail` as canonical JSON text).
fn record_item(r: &AuditRecord) -> Result<Item, StoreError> {
    Ok(Item::from([
        (attr::INCIDENT_ID.to_owned(), s(r.incident_id.clone())),
        (attr::SEQ.to_owned(), n(r.seq)),
        (attr::AT.to_owned(), s(stamp(r.at)?)),
        (attr::ACTOR.to_owned(), s(r.actor.clone())),
        (attr::ACTION.to_owned(), s(r.action.clone())),
        (attr::DETAIL.to_owned(), s(canonical_json(&r.detail))),
        (attr::PREV_HASH.to_owned(), s(r.prev_hash.clone())),
        (attr::HASH.to_owned(), s(r.hash.clone())),
    ]))
}

/// A record read back, or (its seq if readable, why not).
fn record_from_item(item: &Item) -> Result<AuditRecord, (Option<u64>, StoreError)> {
    let r = Reader::new(item, "audit record");
    let seq = r.u64(attr::SEQ).ok();
    let read = || -> Result<AuditRecord, StoreError> {
        Ok(AuditRecord {
            incident_id: r.s(attr::INCIDENT_ID)?.to_owned(),
            seq: r.u64(attr::SEQ)?,
            at: r.time(attr::AT)?,
            actor: r.s(attr::ACTOR)?.to_owned(),
            action: r.s(attr::ACTION)?.to_owned(),
            detail: r.json(attr::DETAIL)?,
            prev_hash: r.s(attr::PREV_HASH)?.to_owned(),
            hash: r.s(attr::HASH)?.to_owned(),
        })
    };
    read().map_err(|e| (seq, e))
}

fn check_reason(reason: &str) -> Result<(), StoreError> {
    let ok = !reason.is_empty()
        && reason.len() <= 64
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "anchor reason `{reason}`: 1-64 characters of a-z, 0-9 and -"
        )))
    }
}

fn lock_mode(evidence: &EvidenceConfig) -> Result<ObjectLockMode, StoreError> {
    if evidence.retention_days == 0 {
        return Err(StoreError::Configuration(
            "evidence.retention_days must be at least 1".into(),
        ));
    }
    match evidence.object_lock_mode.as_str() {
        "COMPLIANCE" => Ok(ObjectLockMode::Compliance),
        "GOVERNANCE" => Ok(ObjectLockMode::Governance),
        other => Err(StoreError::Configuration(format!(
            "evidence.object_lock_mode `{other}` is neither COMPLIANCE nor GOVERNANCE"
        ))),
    }
}

impl AuditLog {
    /// The log on these clients and tables.
    pub fn new(clients: Clients, names: TableNames) -> AuditLog {
        AuditLog { clients, names }
    }

    /// Appends one record to the incident's chain and returns it.
    ///
    /// Conditional on its `seq` not existing; on a lost race the head is re-read and the record
    /// rebuilt on it, up to 10 attempts (then `Conflict`). A put whose answer was lost but that
    /// landed is recognized (the head is then exactly this record) and not appended twice.
    pub async fn append(
        &self,
        incident_id: &str,
        actor: &str,
        event: &AuditEvent,
        at: OffsetDateTime,
    ) -> Result<AuditRecord, StoreError> {
        check_incident_id(incident_id)?;
        let action = event.action();
        let detail = event
            .detail()
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        if actor.is_empty() || action.is_empty() {
            return Err(StoreError::InvalidInput(
                "an audit record needs an actor and an action".into(),
            ));
        }
        let mut attempts = Attempts::new(&self.clients, APPEND_ATTEMPTS);
        let mut head = self.head(incident_id).await?;
        while attempts.take() {
            let record = AuditRecord::next(
                head.as_ref(),
                incident_id,
                at,
                actor,
                &action,
                detail.clone(),
            );
            let mut e = Expr::new();
            let seq = e.name(attr::SEQ);
            e.condition(format!("attribute_not_exists({seq})"));
            let put = self
                .clients
                .dynamodb()
                .put_item()
                .table_name(&self.names.audit)
                .set_item(Some(record_item(&record)?))
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .send()
                .await;
            match put {
                Ok(_) => return Ok(record),
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(PutItemError::ConditionalCheckFailedException(_))
                    ) || err.code() == Some("TransactionConflictException") =>
                {
                    attempts.backoff().await;
                    head = self.head(incident_id).await?;
                    if head.as_ref().is_some_and(|h| h.hash == record.hash) {
                        return Ok(record);
                    }
                }
                Err(err) => return Err(StoreError::sdk(PUT, &err)),
            }
        }
        Err(StoreError::Conflict(format!(
            "audit chain of {incident_id}: concurrent appends kept winning ({} attempts)",
            attempts.used()
        )))
    }

    /// The newest record (strongly consistent), if any.
    pub async fn head(&self, incident_id: &str) -> Result<Option<AuditRecord>, StoreError> {
        let mut e = Expr::new();
        let k = e.name(attr::INCIDENT_ID);
        let v = e.value(s(incident_id));
        let out = self
            .clients
            .dynamodb()
            .query()
            .table_name(&self.names.audit)
            .key_condition_expression(format!("{k} = {v}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(QUERY, &e))?;
        out.items()
            .first()
            .map(|item| record_from_item(item).map_err(|(_, e)| e))
            .transpose()
    }

    /// Every stored item of the chain, in `seq` order (strongly consistent, every page).
    async fn items(&self, incident_id: &str) -> Result<Vec<Item>, StoreError> {
        let mut e = Expr::new();
        let k = e.name(attr::INCIDENT_ID);
        let v = e.value(s(incident_id));
        let mut out = Vec::new();
        let mut pages = self
            .clients
            .dynamodb()
            .query()
            .table_name(&self.names.audit)
            .key_condition_expression(format!("{k} = {v}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(QUERY, &e))?;
            out.extend(page.items().iter().cloned());
        }
        Ok(out)
    }

    /// The incident's chain, in `seq` order.
    pub async fn chain(&self, incident_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        check_incident_id(incident_id)?;
        self.items(incident_id)
            .await?
            .iter()
            .map(|item| record_from_item(item).map_err(|(_, e)| e))
            .collect()
    }

    /// Writes the chain head to the evidence bucket:
    /// `incidents/<id>/audit/anchor-<seq>-<reason>.json`, a JSON [`Anchor`], with a SHA-256
    /// checksum, the evidence settings' Object Lock mode and an explicit retain-until date
    /// (`retention_days` from now), created only if absent (`If-None-Match: *`). The version
    /// written is read back (`HeadObject`) to prove it is locked.
    ///
    /// Anchoring the same head for the same reason again returns the existing anchor. A different
    /// anchor under the same key means the chain was rewritten since: `Conflict`.
    pub async fn anchor(
        &self,
        incident_id: &str,
        reason: &str,
        bucket: &str,
        evidence: &EvidenceConfig,
        at: OffsetDateTime,
    ) -> Result<Anchor, StoreError> {
        check_incident_id(incident_id)?;
        check_reason(reason)?;
        let mode = lock_mode(evidence)?;
        let head = self.head(incident_id).await?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "the audit chain of {incident_id} is empty: nothing to anchor"
            ))
        })?;
        let anchor = Anchor {
            incident_id: incident_id.to_owned(),
            seq: head.seq,
            hash: head.hash,
            reason: reason.to_owned(),
            at,
        };
        let key = anchor_key(incident_id, anchor.seq, reason);
        let body = serde_json::to_vec(&anchor).map_err(|e| StoreError::Internal {
            operation: PUT_OBJECT,
            detail: e.to_string(),
        })?;
        let put = locked::put(
            &self.clients,
            LockedObject {
                bucket,
                key: &key,
                bytes: body,
                content_type: "application/json",
                content_encoding: None,
                metadata: Vec::new(),
                mode: mode.clone(),
                retention_days: evidence.retention_days,
                // Create only: an anchor is never replaced by a new version.
                create_only: true,
            },
        )
        .await;
        let written = match put {
            Ok(written) => written,
            Err(LockedError::Put {
                refusal: PutRefusal::Exists,
                ..
            }) => {
                return self.existing_anchor(bucket, &key, &anchor).await;
            }
            Err(LockedError::Put { refusal, error }) => {
                let err = StoreError::sdk(PUT_OBJECT, &error);
                return Err(match refusal {
                    PutRefusal::NoSuchBucket => StoreError::Configuration(format!(
                        "the evidence bucket `{bucket}` does not exist: {err}"
                    )),
                    PutRefusal::NoObjectLock => StoreError::Configuration(format!(
                        "the evidence bucket `{bucket}` has no Object Lock configuration: an anchor cannot be locked there: {err}"
                    )),
                    PutRefusal::Exists | PutRefusal::Other => err,
                });
            }
            Err(LockedError::Checksum { echoed, sent }) => {
                return Err(StoreError::Verification(format!(
                    "s3://{bucket}/{key}: S3 answered checksum {echoed}, the bytes sent have {sent}"
                )));
            }
            Err(LockedError::Unversioned) => {
                return Err(StoreError::Configuration(format!(
                    "the evidence bucket `{bucket}` is not versioned (PutObject of {key} returned no version id): an anchor cannot be locked there"
                )));
            }
        };
        self.verify_lock(
            bucket,
            &key,
            &written.version_id,
            &mode,
            written.at,
            evidence,
        )
        .await?;
        Ok(anchor)
    }

    /// The anchor already under `key`: the same head (a repeated call) or a rewritten chain.
    async fn existing_anchor(
        &self,
        bucket: &str,
        key: &str,
        wanted: &Anchor,
    ) -> Result<Anchor, StoreError> {
        let existing = self.read_anchor(bucket, key, None).await?;
        if existing.incident_id == wanted.incident_id
            && existing.seq == wanted.seq
            && existing.hash == wanted.hash
            && existing.reason == wanted.reason
        {
            Ok(existing)
        } else {
            Err(StoreError::Conflict(format!(
                "s3://{bucket}/{key} anchors head {} at seq {}, the chain now has {} there: the chain was rewritten",
                existing.hash, existing.seq, wanted.hash
            )))
        }
    }

    /// The version written must carry the lock mode and at least the retention asked for.
    async fn verify_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        mode: &ObjectLockMode,
        written_at: SystemTime,
        evidence: &EvidenceConfig,
    ) -> Result<(), StoreError> {
        let head = self
            .clients
            .s3()
            .head_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| StoreError::sdk(HEAD_OBJECT, &e))?;
        let written_secs = written_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        // One second of slack: the retain-until date is sent in whole seconds.
        let wanted = i64::try_from(written_secs + u64::from(evidence.retention_days) * 86_400)
            .unwrap_or(i64::MAX)
            - 1;
        let until = head.object_lock_retain_until_date().map(|d| d.secs());
        if head.object_lock_mode() != Some(mode) || until.is_none_or(|u| u < wanted) {
            return Err(StoreError::Verification(format!(
                "s3://{bucket}/{key} version {version_id} reads back with lock {:?} until {until:?}, not {} until at least {wanted}",
                head.object_lock_mode().map(ObjectLockMode::as_str),
                mode.as_str()
            )));
        }
        Ok(())
    }

    /// One anchor object (a given version, or the current one).
    async fn read_anchor(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Anchor, StoreError> {
        let out = self
            .clients
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            // The SDK validates the body against the stored SHA-256.
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| StoreError::sdk(GET_OBJECT, &e))?;
        let bytes = out.body.collect().await.map_err(|e| {
            let failure = SdkFailure {
                operation: GET_OBJECT,
                name: ErrorName::Retryable,
                code: None,
                request_id: None,
                detail: format!("reading s3://{bucket}/{key}: {e}"),
            };
            super::log_failure(&failure);
            StoreError::Aws(failure)
        })?;
        serde_json::from_slice(&bytes.into_bytes()).map_err(|e| StoreError::Corrupt {
            what: format!("anchor s3://{bucket}/{key}"),
            why: e.to_string(),
        })
    }

    /// Every anchor ever written for the incident: every version under its anchor prefix,
    /// including versions hidden behind a delete marker, ordered by `seq`.
    pub async fn anchors(
        &self,
        incident_id: &str,
        bucket: &str,
    ) -> Result<Vec<Anchor>, StoreError> {
        check_incident_id(incident_id)?;
        let prefix = anchor_prefix(incident_id);
        let mut versions: Vec<(String, String)> = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .clients
                .s3()
                .list_object_versions()
                .bucket(bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk(LIST_VERSIONS, &e))?;
            for v in page.versions() {
                if let (Some(key), Some(version)) = (v.key(), v.version_id()) {
                    versions.push((key.to_owned(), version.to_owned()));
                }
            }
            if page.is_truncated() == Some(true) {
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
                if key_marker.is_none() {
                    break;
                }
            } else {
                break;
            }
        }
        let mut anchors: Vec<Anchor> = Vec::new();
        for (key, version) in versions {
            let version = Some(version.as_str()).filter(|v| *v != "null");
            let anchor = self.read_anchor(bucket, &key, version).await?;
            if anchor.incident_id != incident_id
                || key != anchor_key(incident_id, anchor.seq, &anchor.reason)
            {
                return Err(StoreError::Corrupt {
                    what: format!("anchor s3://{bucket}/{key}"),
                    why: format!(
                        "it names incident {} seq {} reason {}, which is not what its key says",
                        anchor.incident_id, anchor.seq, anchor.reason
                    ),
                });
            }
            if !anchors.contains(&anchor) {
                anchors.push(anchor);
            }
        }
        anchors.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.at.cmp(&b.at)));
        Ok(anchors)
    }

    /// Reads the chain and every anchor and verifies them (`ir_core::audit::verify`).
    pub async fn verify(&self, incident_id: &str, bucket: &str) -> Result<Verified, VerifyError> {
        check_incident_id(incident_id)?;
        let mut records = Vec::new();
        for item in self.items(incident_id).await? {
            match record_from_item(&item) {
                Ok(r) => records.push(r),
                Err((seq, e)) => {
                    return Err(VerifyError::Unreadable {
                        incident_id: incident_id.to_owned(),
                        seq: seq.unwrap_or(u64::MAX),
                        why: e.to_string(),
                    });
                }
            }
        }
        let anchors = self.anchors(incident_id, bucket).await?;
        ir_core::audit::verify(incident_id, &records, &anchors).map_err(|error| {
            VerifyError::Chain {
                incident_id: incident_id.to_owned(),
                error,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn records_round_trip_through_items() {
        let id = "inc-0123456789abcdef0123";
        let first = AuditRecord::next(
            None,
            id,
            datetime!(2026-11-20 10:00:00.123456789 +01:00),
            "ir-score",
            "triage",
            serde_json::json!({"score": 0.1 + 0.2, "n": 1, "f": 1.0, "z": {"b": [1e300, -0.0]}}),
        );
        let item = record_item(&first).unwrap();
        let back = record_from_item(&item).unwrap();
        assert_eq!(back, first);
        assert!(back.is_intact());
        let mut edited = item.clone();
        edited.insert(attr::DETAIL.into(), s("{\"score\":0.3}"));
        assert!(!record_from_item(&edited).unwrap().is_intact());
        let mut broken = item;
        broken.insert(attr::DETAIL.into(), s("{not json"));
        assert!(matches!(record_from_item(&broken), Err((Some(0), _))));
    }

    #[test]
    fn anchor_keys_and_reasons() {
        let id = "inc-0123456789abcdef0123";
        assert_eq!(
            anchor_key(id, 4, "resolved"),
            "incidents/inc-0123456789abcdef0123/audit/anchor-4-resolved.json"
        );
        assert!(check_reason("left-containment").is_ok());
        assert!(check_reason("../x").is_err());
        assert!(check_reason("").is_err());
    }
}
