//! disable-access-keys: set a user's access keys Inactive (never delete them), and release them.
//!
//! # Which keys an incident deactivated
//!
//! The record must list only the keys a containment set from Active to Inactive (release
//! re-activates exactly those; a key its owner had already disabled must stay disabled). A
//! second run finds every key already Inactive and cannot tell them apart by status, so the
//! first run writes them down on the user itself, BEFORE deactivating anything:
//!
//! - tag key `ir:deactivated-keys:<incident id>` (44 characters for an `inc-` + 20 hex id; the
//!   limit is 128), value the key ids separated by single spaces;
//! - tag values are limited to 256 characters: key ids that do not fit continue in
//!   `ir:deactivated-keys:<incident id>:2`, `:3`, … (a user has at most two access keys of
//!   today's 20 characters, so in practice this is one tag of at most 41 characters).
//!
//! Later runs rebuild the record from these tags plus whatever they deactivate themselves;
//! release removes them. Writing the tag first means a run interrupted after the tag but before
//! a key was deactivated leaves a record that is merely larger than needed (the next run
//! deactivates the rest; re-activating a key that was Active anyway restores the same state),
//! never one that misses a key this incident disabled.
//!
//! Critical path (the finding names one key):
//! - dry-run, and a run that finds everything in place: `GetUser`, `ListAccessKeys`;
//! - enforce, first run: `GetUser`, `ListAccessKeys`, `TagUser`, `UpdateAccessKey` per Active
//!   key, `ListAccessKeys` (read back).

use std::collections::BTreeMap;

use aws_sdk_iam::types::{StatusType, Tag};
use ir_core::action::{AccessKeyRecord, ActionReport, ContainmentRecord, ContainmentRequest};
use ir_core::config::{Mode, Protection};
use ir_core::correlate::is_incident_id;
use ir_core::event::Resource;
use serde_json::{Value, json};

use super::DISABLE_ACCESS_KEYS_ACTION;
use super::principal;
use crate::{ActionError, ReportBuilder};
use ir_aws::Clients;

/// The prefix of the user tag that records which keys an incident deactivated.
pub const KEYS_TAG_PREFIX: &str = "ir:deactivated-keys:";

/// IAM's limit on a tag value.
const TAG_VALUE_MAX: usize = 256;

/// The user tag recording which access keys `incident_id` deactivated (the first of possibly
/// several; see the module docs).
pub fn deactivated_keys_tag(incident_id: &str) -> String {
    format!("{KEYS_TAG_PREFIX}{incident_id}")
}

/// The position of a tag key among an incident's key-list tags: 1 for `base`, n for `base:n`.
fn chunk_index(base: &str, key: &str) -> Option<u32> {
    if key == base {
        return Some(1);
    }
    key.strip_prefix(base)?
        .strip_prefix(':')?
        .parse()
        .ok()
        .filter(|n| *n >= 2)
}

/// The key ids recorded in an incident's tags, in order, without duplicates.
pub(crate) fn keys_from_tags(base: &str, tags: &[(String, String)]) -> Vec<String> {
    let mut chunks: Vec<(u32, &str)> = tags
        .iter()
        .filter_map(|(k, v)| chunk_index(base, k).map(|n| (n, v.as_str())))
        .collect();
    chunks.sort_by_key(|(n, _)| *n);
    let mut keys: Vec<String> = Vec::new();
    for id in chunks.iter().flat_map(|(_, v)| v.split_whitespace()) {
        if !keys.iter().any(|k| k == id) {
            keys.push(id.to_owned());
        }
    }
    keys
}

/// The tags recording `keys`, each value at most [`TAG_VALUE_MAX`] characters.
pub(crate) fn chunk_tags(
    base: &str,
    keys: &[String],
) -> Result<Vec<(String, String)>, ActionError> {
    let mut values: Vec<String> = Vec::new();
    for id in keys {
        if id.len() > TAG_VALUE_MAX {
            return Err(ActionError::InvalidInput(format!(
                "access key id `{id}` is longer than any IAM access key id"
            )));
        }
        match values.last_mut() {
            Some(v) if v.len() + 1 + id.len() <= TAG_VALUE_MAX => {
                v.push(' ');
                v.push_str(id);
            }
            _ => values.push(id.clone()),
        }
    }
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let key = if i == 0 {
                base.to_owned()
            } else {
                format!("{base}:{}", i + 1)
            };
            (key, v)
        })
        .collect())
}

/// One access key of a user.
#[derive(Debug, Clone)]
struct Key {
    id: String,
    /// `Active`, `Inactive` (or `Expired`).
    status: String,
}

impl Key {
    fn is_active(&self) -> bool {
        self.status == StatusType::Active.as_str()
    }
}

async fn list_access_keys(clients: &Clients, user: &str) -> Result<Vec<Key>, ActionError> {
    let mut pages = clients
        .iam()
        .list_access_keys()
        .user_name(user)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            ActionError::sdk("ListAccessKeys", e).not_found_as(|| format!("user {user}"))
        })?;
        for m in page.access_key_metadata() {
            if let Some(id) = m.access_key_id() {
                let status = m.status().map_or("unknown", StatusType::as_str);
                keys.push(Key {
                    id: id.to_owned(),
                    status: status.to_owned(),
                });
            }
        }
    }
    Ok(keys)
}

async fn set_key_status(
    clients: &Clients,
    user: &str,
    id: &str,
    status: StatusType,
) -> Result<(), ActionError> {
    clients
        .iam()
        .update_access_key()
        .user_name(user)
        .access_key_id(id)
        .status(status)
        .send()
        .await
        .map(drop)
        .map_err(|e| {
            ActionError::sdk("UpdateAccessKey", e)
                .not_found_as(|| format!("access key {id} of user {user}"))
        })
}

/// How writing the bookkeeping tags went.
enum Tagged {
    Written,
    /// The user has reached IAM's tag quota (50 per user).
    QuotaFull,
}

async fn tag_user(
    clients: &Clients,
    user: &str,
    tags: &[(String, String)],
) -> Result<Tagged, ActionError> {
    let mut req = clients.iam().tag_user().user_name(user);
    for (k, v) in tags {
        let tag = Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| ActionError::InvalidInput(format!("tag {k}: {e}")))?;
        req = req.tags(tag);
    }
    match req.send().await {
        Ok(_) => Ok(Tagged::Written),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_limit_exceeded_exception()) =>
        {
            tracing::warn!(
                user,
                "TagUser: the user's tag quota is full; deactivating without the bookkeeping tag"
            );
            Ok(Tagged::QuotaFull)
        }
        Err(e) => Err(ActionError::sdk("TagUser", e).not_found_as(|| format!("user {user}"))),
    }
}

/// Deactivates the finding's access key, or all the user's keys (see
/// [`super::disable_access_keys`]).
pub(super) async fn disable_access_keys(
    clients: &Clients,
    protection: &Protection,
    req: &ContainmentRequest,
) -> Result<ActionReport, ActionError> {
    let mut report = ReportBuilder::new(
        &req.incident_id,
        &req.step_id,
        DISABLE_ACCESS_KEYS_ACTION,
        req.mode,
        clients.calls().count(),
    );
    if !is_incident_id(&req.incident_id) {
        return Err(ActionError::InvalidInput(format!(
            "`{}` is not an incident id",
            req.incident_id
        )));
    }
    let (user_name, named) = match &req.resource {
        Resource::IamUser(u) => (
            u.user_name.as_str(),
            u.access_key_id
                .as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty()),
        ),
        Resource::IamRole(r) => {
            return Err(ActionError::InvalidInput(format!(
                "role {}: a role has no access keys of its own; its session keys (ASIA…) are \
                 temporary and cannot be deactivated: revoke-sessions is the action for a role",
                r.role_name
            )));
        }
        other => {
            return Err(ActionError::InvalidInput(format!(
                "disable-access-keys acts on an iam-user, not on {} {}",
                other.kind(),
                other.id()
            )));
        }
    };
    if let Some(k) = named.filter(|k| k.starts_with("ASIA")) {
        return Err(ActionError::InvalidInput(format!(
            "user {user_name}: {k} is a temporary session key (ASIA…), which cannot be \
             deactivated: revoke-sessions on the user ends it (run disable-access-keys without \
             a key id to deactivate the user's long-term keys)"
        )));
    }

    let target = principal::get_user(clients, user_name).await?;
    target.ensure_unprotected(protection)?;
    let who = target.label();
    let keys = list_access_keys(clients, user_name).await?;
    let wanted: Vec<&Key> = match named {
        Some(k) => match keys.iter().find(|x| x.id == k) {
            Some(key) => vec![key],
            None => {
                return Err(ActionError::NotFound(format!(
                    "access key {k} does not belong to user {user_name} (its keys: {})",
                    if keys.is_empty() {
                        "none".to_owned()
                    } else {
                        keys.iter()
                            .map(|k| k.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
        },
        None => keys.iter().collect(),
    };

    let base = deactivated_keys_tag(&req.incident_id);
    let tagged = keys_from_tags(&base, &target.tags);
    let mut recorded = tagged.clone();
    for key in wanted.iter().filter(|k| k.is_active()) {
        if !recorded.contains(&key.id) {
            recorded.push(key.id.clone());
        }
    }
    let enforce = report.mode() == Mode::Enforce;

    // 1. Bookkeeping tags, before any key changes.
    let mut tag_written = !tagged.is_empty();
    if recorded != tagged {
        let old: BTreeMap<&str, &str> = target
            .tags
            .iter()
            .filter(|(k, _)| chunk_index(&base, k).is_some())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let new = chunk_tags(&base, &recorded)?;
        let outcome = if enforce {
            tag_user(clients, user_name, &new).await?
        } else {
            Tagged::Written
        };
        match outcome {
            Tagged::Written => {
                tag_written = true;
                for (k, v) in &new {
                    let before = old.get(k.as_str()).map_or(Value::Null, |v| json!(v));
                    report.change(&who, format!("tag:{k}"), before, json!(v));
                }
            }
            Tagged::QuotaFull => report.note(format!(
                "{who} has reached IAM's tag quota: tag {base} recording the deactivated keys \
                 could not be written. This report's record is complete, but a re-run of this \
                 step will not know which keys this incident deactivated: release from THIS \
                 report's record"
            )),
        }
    }

    // 2. The keys.
    let mut deactivated_now: Vec<&str> = Vec::new();
    for key in &wanted {
        let attribute = format!("access-key:{}", key.id);
        if key.is_active() {
            if enforce {
                set_key_status(clients, user_name, &key.id, StatusType::Inactive)
                    .await
                    .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
                deactivated_now.push(&key.id);
            }
            report.change(&who, attribute, json!("Active"), json!("Inactive"));
        } else {
            report.change(&who, attribute, json!(key.status), json!(key.status));
        }
    }

    // 3. Read back.
    if !deactivated_now.is_empty() {
        let after = list_access_keys(clients, user_name)
            .await
            .map_err(|e| e.after(&report.snapshot(clients.calls())))?;
        let still_active: Vec<&str> = deactivated_now
            .iter()
            .copied()
            .filter(|id| {
                after
                    .iter()
                    .find(|k| k.id == *id)
                    .is_none_or(Key::is_active)
            })
            .collect();
        if !still_active.is_empty() {
            return Err(ActionError::Verification(format!(
                "{who}: access keys {} are not Inactive (or are gone) after UpdateAccessKey",
                still_active.join(", ")
            ))
            .after(&report.snapshot(clients.calls())));
        }
    }

    // The record: what this incident has deactivated, once something is in place.
    let in_place = if enforce { recorded } else { tagged };
    if !in_place.is_empty() {
        report.report_mut().record = Some(ContainmentRecord::AccessKeys(AccessKeyRecord {
            user_name: target.principal.name.clone(),
            deactivated: in_place,
        }));
    }

    // Notes.
    if keys.is_empty() {
        report.note(format!("{who} has no access keys"));
    }
    report.note(
        "access keys are deactivated, never deleted: they stay as evidence (their last use, \
         CloudTrail), and release re-activates exactly the keys this incident deactivated",
    );
    if let Some(k) = named {
        let others: Vec<&str> = keys
            .iter()
            .filter(|x| x.id != k && x.is_active())
            .map(|x| x.id.as_str())
            .collect();
        if !others.is_empty() {
            report.note(format!(
                "only {k}, the key the finding names, is deactivated; other Active keys of {who} \
                 stay Active: {}",
                others.join(", ")
            ));
        }
    }
    report.note(format!(
        "temporary credentials minted earlier with these keys (GetSessionToken, \
         GetFederationToken; up to 36 h) stay valid until they expire: revoke-sessions on {who} \
         ends them, and sessions of roles assumed with the keys need revoke-sessions on those \
         roles"
    ));
    report.note(format!(
        "{who}'s console password is not touched: deny-principal denies every action of the user"
    ));
    if tag_written {
        report.note(format!(
            "tag {base} on {who} records which keys this incident deactivated (written before \
             deactivating), so a re-run reports the same record; release removes it"
        ));
    }
    if !enforce {
        report.note(format!(
            "dry-run: read {who} and its access keys, changed nothing; IAM has no DryRun flag, so \
             the permissions to tag the user and update its keys were not verified"
        ));
    }
    Ok(report.finish(clients.calls()))
}

/// Re-activates exactly the recorded keys (see [`super::restore_access_keys`]).
///
/// Critical path: `GetUser`, `ListAccessKeys`, then in enforce `UpdateAccessKey` per Inactive
/// recorded key, `UntagUser` (the incident's bookkeeping tags) and `ListAccessKeys` (read back).
pub(super) async fn restore_access_keys(
    clients: &Clients,
    record: &AccessKeyRecord,
    report: &mut ReportBuilder,
) -> Result<(), ActionError> {
    let user = record.user_name.as_str();
    let who = format!("user/{user}");
    let target = match principal::get_user(clients, user).await {
        Ok(t) => t,
        Err(ActionError::NotFound(_)) => {
            report.note(format!(
                "{who} no longer exists: access keys {} cannot be re-activated",
                record.deactivated.join(", ")
            ));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let keys = list_access_keys(clients, user).await?;
    let enforce = report.mode() == Mode::Enforce;

    let mut reactivated: Vec<&str> = Vec::new();
    for id in &record.deactivated {
        let attribute = format!("access-key:{id}");
        match keys.iter().find(|k| &k.id == id) {
            None => report.note(format!(
                "access key {id} of {who} no longer exists (deleted since): not re-activated"
            )),
            Some(k) if k.is_active() => {
                report.change(&who, attribute, json!("Active"), json!("Active"))
            }
            Some(k) => {
                if enforce {
                    set_key_status(clients, user, id, StatusType::Active).await?;
                    reactivated.push(id);
                }
                report.change(&who, attribute, json!(k.status), json!("Active"));
            }
        }
    }

    if record
        .deactivated
        .iter()
        .any(|id| keys.iter().any(|k| &k.id == id && !k.is_active()))
    {
        report.note(format!(
            "re-activated keys of {who} are the same secrets as when the incident began: unless \
             the finding was a false positive, rotate them (create new keys, delete these once \
             the evidence is kept)"
        ));
    }

    // The bookkeeping tags of this incident go with the containment they describe.
    let incident_id = report.report_mut().incident_id.clone();
    let base = deactivated_keys_tag(&incident_id);
    let ours: Vec<&(String, String)> = target
        .tags
        .iter()
        .filter(|(k, _)| chunk_index(&base, k).is_some())
        .collect();
    if !ours.is_empty() {
        if enforce {
            clients
                .iam()
                .untag_user()
                .user_name(user)
                .set_tag_keys(Some(ours.iter().map(|(k, _)| k.clone()).collect()))
                .send()
                .await
                .map_err(|e| ActionError::sdk("UntagUser", e))?;
        }
        for (k, v) in ours {
            report.change(&who, format!("tag:{k}"), json!(v), Value::Null);
        }
    }

    if !reactivated.is_empty() {
        let after = list_access_keys(clients, user).await?;
        let not_active: Vec<&str> = reactivated
            .iter()
            .copied()
            .filter(|id| !after.iter().any(|k| k.id == *id && k.is_active()))
            .collect();
        if !not_active.is_empty() {
            return Err(ActionError::Verification(format!(
                "{who}: access keys {} are not Active after UpdateAccessKey",
                not_active.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "ir:deactivated-keys:inc-0123456789abcdef0123";

    #[test]
    fn the_tag_key_fits_iam_limits() {
        assert_eq!(deactivated_keys_tag("inc-0123456789abcdef0123"), BASE);
        assert!(BASE.len() + ":99".len() <= 128);
    }

    #[test]
    fn key_lists_round_trip_through_tags() {
        let keys = vec![
            "AKIAAAAAAAAAAAAAAAAA".to_owned(),
            "AKIABBBBBBBBBBBBBBBB".to_owned(),
        ];
        let tags = chunk_tags(BASE, &keys).unwrap();
        assert_eq!(
            tags,
            vec![(
                BASE.to_owned(),
                "AKIAAAAAAAAAAAAAAAAA AKIABBBBBBBBBBBBBBBB".to_owned()
            )]
        );
        assert_eq!(keys_from_tags(BASE, &tags), keys);
        assert!(chunk_tags(BASE, &[]).unwrap().is_empty());
    }

    #[test]
    fn long_key_ids_spill_into_numbered_tags() {
        // Access key ids may be up to 128 characters: two of them do not fit one 256-char value.
        let keys = vec!["A".repeat(128), "B".repeat(128), "C".repeat(10)];
        let tags = chunk_tags(BASE, &keys).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].0, BASE);
        assert_eq!(tags[1].0, format!("{BASE}:2"));
        assert!(tags.iter().all(|(_, v)| v.len() <= TAG_VALUE_MAX));
        // Order is kept whatever order the tags come back in; other tags are ignored.
        let mut shuffled = vec![
            ("owner".to_owned(), "x y".to_owned()),
            ("ir:deactivated-keys:inc-other".to_owned(), "Z".to_owned()),
        ];
        shuffled.extend(tags.iter().rev().cloned());
        assert_eq!(keys_from_tags(BASE, &shuffled), keys);
        assert!(chunk_tags(BASE, &["x".repeat(257)]).is_err());
    }

    #[test]
    fn chunk_keys_are_recognized_exactly() {
        assert_eq!(chunk_index(BASE, BASE), Some(1));
        assert_eq!(chunk_index(BASE, &format!("{BASE}:2")), Some(2));
        assert_eq!(chunk_index(BASE, &format!("{BASE}:1")), None);
        assert_eq!(chunk_index(BASE, &format!("{BASE}0")), None);
        assert_eq!(chunk_index(BASE, &format!("{BASE}:x")), None);
    }
}
