//! `ir review`: the post-incident review of a resolved incident, as approvers hold it.
//!
//! [`change_review`] is every change: open (a `resolved` incident becomes `postmortem` with its
//! review, held `post_incident_review.after_days` after the resolution unless a date is given),
//! sections written, action items added and closed, the review closed. [`overdue`] lists the
//! open items past their due date across incidents in postmortem; [`ReviewShown`] is a review as
//! `ir review show` and `ir incidents show` present it.
//!
//! Invariants: the caller is the identity STS returned for the caller's own credentials and must
//! hold a role of `notifications.approver_roles` (refused `AccessDenied` otherwise, before the
//! incident is read); nothing the caller typed is trusted (`ir_core::review` checks every
//! field); the incident and its review are written in one write conditional on the version read
//! (`IncidentStore::write_review`), and a lost race plans again from what the other writer left,
//! so a concurrent item or section is never overwritten; every change is then appended to the
//! audit chain under the caller, and the chain head is anchored when the status changes (open)
//! and when the review closes. A change that writes nothing (a section written again as it is)
//! appends nothing. The incident is written before its audit record: an append that still fails
//! after its retries is reported (exit 1) with what was changed.

use ir_core::audit::Anchor;
use ir_core::audit::event::{
    AuditEvent, ReviewClosed, ReviewItemAdded, ReviewItemClosed, ReviewOpened, ReviewWritten,
    WrittenSection,
};
use ir_core::config::PostIncidentReview;
use ir_core::incident::Status;
use ir_core::review::{
    self, ActionItem, Closing, NewItem, Review, ReviewError, Section, section_text,
};
use ir_core::{ErrorName, Named, Severity};
use serde::Serialize;
use thiserror::Error;
use time::{Date, OffsetDateTime};

use ir_aws::Clients;
use ir_aws::store::{Incident, IncidentStore, StoreError, TableNames};

use crate::approval::ApproverPolicy;
use crate::audit_writer::AuditWriter;
use crate::recorder::{RecordError, RecorderSettings};
use crate::release::{ReleaseError, authorized_incident};

/// Why the audit head is anchored when a review is opened (the incident enters postmortem).
pub const REVIEW_OPENED: &str = "review-opened";
/// Why the audit head is anchored when a review is closed.
pub const REVIEW_CLOSED: &str = "review-closed";

/// What a review change needs besides the caller: where the chain head is anchored, and when
/// the review is held.
#[derive(Debug, Clone)]
pub struct ReviewSettings {
    pub recorder: RecorderSettings,
    pub review: PostIncidentReview,
}

/// One change to an incident's review, as the operator typed it (checked here).
#[derive(Debug, Clone)]
pub enum ReviewChange {
    /// Open the review of a resolved incident, held on `date` (`YYYY-MM-DD`) or
    /// `post_incident_review.after_days` after the resolution.
    Open { date: Option<String> },
    /// Write these sections (each replaces the section's text).
    Write { sections: Vec<(Section, String)> },
    /// Add an action item.
    AddItem {
        title: String,
        owner: String,
        due: String,
        jira_key: Option<String>,
    },
    /// Close an open action item, done or dropped (a dropped one says why).
    CloseItem {
        id: String,
        closing: Closing,
        note: Option<String>,
    },
    /// Close the review (every section written).
    Close,
}

/// An operator's change to an incident's review.
#[derive(Debug, Clone)]
pub struct ReviewRequest {
    pub incident_id: String,
    pub change: ReviewChange,
}

/// A change as checked: the typed values the review's operations take.
#[derive(Debug, Clone)]
enum Checked {
    Open {
        date: Option<Date>,
    },
    Write {
        sections: Vec<(Section, String)>,
    },
    AddItem(NewItem),
    CloseItem {
        id: String,
        closing: Closing,
        note: Option<String>,
    },
    Close,
}

impl ReviewChange {
    /// Whether every field is well formed (`InvalidInput` naming the field otherwise): what a
    /// caller checks before asking AWS anything. [`change_review`] checks again.
    pub fn check(&self) -> Result<(), ReviewFailure> {
        self.checked().map(drop).map_err(refused)
    }

    /// Every field checked, before anything is read.
    fn checked(&self) -> Result<Checked, ReviewError> {
        Ok(match self {
            ReviewChange::Open { date } => Checked::Open {
                date: date
                    .as_deref()
                    .map(|d| review::parse_date("date", d))
                    .transpose()?,
            },
            ReviewChange::Write { sections } => {
                if sections.is_empty() {
                    return Err(ReviewError::InvalidInput {
                        field: "sections".to_owned(),
                        why: "name at least one section to write".to_owned(),
                    });
                }
                let mut out: Vec<(Section, String)> = Vec::new();
                for (section, text) in sections {
                    if out.iter().any(|(s, _)| s == section) {
                        return Err(ReviewError::InvalidInput {
                            field: section.as_str().to_owned(),
                            why: "given twice".to_owned(),
                        });
                    }
                    out.push((*section, section_text(*section, text)?));
                }
                Checked::Write { sections: out }
            }
            ReviewChange::AddItem {
                title,
                owner,
                due,
                jira_key,
            } => Checked::AddItem(NewItem::checked(title, owner, due, jira_key.as_deref())?),
            ReviewChange::CloseItem { id, closing, note } => {
                review::check_item_id(id)?;
                Checked::CloseItem {
                    id: id.clone(),
                    closing: *closing,
                    note: review::closing_note(*closing, note.as_deref())?,
                }
            }
            ReviewChange::Close => Checked::Close,
        })
    }
}

/// What a review change did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reviewed {
    pub incident_id: String,
    /// The caller's ARN as AWS authenticated it.
    pub by: String,
    /// The audit action of the change (`review-opened`, `review-item-added`, …).
    pub action: String,
    /// `false`: nothing changed (sections written again as they were); nothing appended.
    pub changed: bool,
    /// The audit record appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub status: Status,
    /// The item added or closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<ActionItem>,
    /// The sections whose text changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
    /// The review after the change.
    pub review: Review,
    /// Open and close: the chain head anchored in the evidence bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

/// Why a review change was refused or failed.
#[derive(Debug, Error)]
pub enum ReviewFailure {
    /// A malformed incident id, date, item id, Jira key, or text.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The caller holds no role of `notifications.approver_roles`.
    #[error("{caller} may not change post-incident reviews: {why}")]
    NotAnApprover { caller: String, why: String },
    /// No such incident, or no such action item.
    #[error("not found: {0}")]
    NotFound(String),
    /// The incident or its review is not in a state that allows the change.
    #[error("refused: {0}")]
    Conflict(String),
    /// The incident store, the audit log or the anchor failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The review was written, but its audit record could not be appended (after the audit
    /// writer's own retries): the message says what changed.
    #[error("{0}")]
    Unaudited(String),
}

impl Named for ReviewFailure {
    fn error_name(&self) -> ErrorName {
        match self {
            ReviewFailure::InvalidInput(_) => ErrorName::InvalidInput,
            ReviewFailure::NotAnApprover { .. } => ErrorName::AccessDenied,
            ReviewFailure::NotFound(_) => ErrorName::NotFound,
            ReviewFailure::Conflict(_) => ErrorName::Conflict,
            ReviewFailure::Record(e) => e.error_name(),
            ReviewFailure::Unaudited(_) => ErrorName::Internal,
        }
    }
}

impl From<ReleaseError> for ReviewFailure {
    /// The caller's authorization and the incident's read, as `ir resolve` does them.
    fn from(e: ReleaseError) -> ReviewFailure {
        match e {
            ReleaseError::InvalidInput(m) => ReviewFailure::InvalidInput(m),
            ReleaseError::NotAnApprover { caller, why } => {
                ReviewFailure::NotAnApprover { caller, why }
            }
            ReleaseError::NotFound(m) => ReviewFailure::NotFound(m),
            ReleaseError::Record(r) => ReviewFailure::Record(r),
            other @ (ReleaseError::Conflict(_)
            | ReleaseError::Action(_)
            | ReleaseError::Gone { .. }) => ReviewFailure::Conflict(other.to_string()),
        }
    }
}

fn store_failed(e: StoreError) -> ReviewFailure {
    ReviewFailure::Record(RecordError::Store(e))
}

/// A review refusal as the change's error (exit codes by stable name).
fn refused(e: ReviewError) -> ReviewFailure {
    match e.error_name() {
        ErrorName::InvalidInput => ReviewFailure::InvalidInput(e.to_string()),
        ErrorName::NotFound => ReviewFailure::NotFound(e.to_string()),
        _ => ReviewFailure::Conflict(e.to_string()),
    }
}

/// What one planning of the change decided (the last planning is what was written).
#[derive(Debug, Default)]
struct Planned {
    event: Option<AuditEvent>,
    item: Option<ActionItem>,
    sections: Vec<Section>,
}

/// The UTC day the incident was resolved.
fn resolved_on(incident: &Incident) -> Result<Date, ReviewFailure> {
    incident
        .summary
        .timeline
        .resolved_at
        .map(|t| t.to_offset(time::UtcOffset::UTC).date())
        .ok_or_else(|| {
            ReviewFailure::Conflict(format!(
                "incident {} has no resolution time: no review can be scheduled",
                incident.summary.incident_id
            ))
        })
}

/// The next state of the incident for `change` by `caller` at `now`, from `current` as read.
fn plan(
    current: &Incident,
    change: &Checked,
    settings: &PostIncidentReview,
    caller: &str,
    now: OffsetDateTime,
) -> Result<(Option<(Status, Review)>, Planned), ReviewFailure> {
    let id = current.summary.incident_id.as_str();
    let status = current.summary.status;
    let mut planned = Planned::default();
    if let Checked::Open { date } = change {
        if status != Status::Resolved {
            let why = if current.review.is_some() {
                format!("incident {id} is in {status}: its review is open already")
            } else {
                format!(
                    "incident {id} is {status}: a review is opened once the incident is resolved"
                )
            };
            return Err(ReviewFailure::Conflict(why));
        }
        let resolved = resolved_on(current)?;
        let review_date =
            review::review_date(resolved, settings.after_days, *date).map_err(refused)?;
        let review = Review::open(caller, now, review_date);
        planned.event = Some(AuditEvent::ReviewOpened(ReviewOpened {
            by: caller.to_owned(),
            review_date,
            resolved_on: resolved,
            date_given: date.is_some(),
            from: status,
            status: Status::Postmortem,
        }));
        return Ok((Some((Status::Postmortem, review)), planned));
    }
    let Some(mut review) = current.review.clone() else {
        return Err(ReviewFailure::Conflict(format!(
            "incident {id} has no review: open it with `ir review open {id}` once the incident is resolved"
        )));
    };
    if status != Status::Postmortem {
        return Err(ReviewFailure::Conflict(format!(
            "incident {id} is {status}, not postmortem: its review cannot change"
        )));
    }
    match change {
        Checked::Open { .. } => {}
        Checked::Write { sections } => {
            let changed = review.write(sections).map_err(refused)?;
            if changed.is_empty() {
                return Ok((None, planned));
            }
            planned.event = Some(AuditEvent::ReviewWritten(ReviewWritten {
                by: caller.to_owned(),
                sections: changed
                    .iter()
                    .map(|s| WrittenSection::of(*s, review.sections.get(*s)))
                    .collect(),
            }));
            planned.sections = changed;
        }
        Checked::AddItem(new) => {
            let resolved = resolved_on(current)?;
            let item = review
                .add_item(new.clone(), resolved, caller, now)
                .map_err(refused)?
                .clone();
            planned.event = Some(AuditEvent::ReviewItemAdded(ReviewItemAdded {
                by: caller.to_owned(),
                item: item.clone(),
            }));
            planned.item = Some(item);
        }
        Checked::CloseItem { id, closing, note } => {
            let item = review
                .close_item(id, *closing, note.clone(), caller, now)
                .map_err(refused)?
                .clone();
            planned.event = Some(AuditEvent::ReviewItemClosed(ReviewItemClosed {
                by: caller.to_owned(),
                id: item.id.clone(),
                status: item.status,
                resolution: item.resolution.clone(),
            }));
            planned.item = Some(item);
        }
        Checked::Close => {
            review.close(caller, now).map_err(refused)?;
            planned.event = Some(AuditEvent::ReviewClosed(ReviewClosed {
                by: caller.to_owned(),
                open_items: review.open_items().map(|i| i.id.clone()).collect(),
                items: review.items.len(),
            }));
        }
    }
    review.check_size().map_err(refused)?;
    Ok((Some((Status::Postmortem, review)), planned))
}

/// Applies `req.change` to `req.incident_id`'s review as `caller_arn` (the identity STS returned for
/// the caller's credentials), who must be an approver.
///
/// Input is checked first (`InvalidInput`), then the caller (`AccessDenied`), then the
/// incident is read (`NotFound`) and the change planned on it: opening needs a `resolved`
/// incident, every other change an open review (`Conflict` otherwise); an unknown item is
/// `NotFound`, an item closed already or a closed review's sections `Conflict`. The incident is
/// written conditional on its version (planned again on a lost race), then the change is
/// audited under the caller and, for open and close, the chain head anchored.
pub async fn change_review(
    clients: &Clients,
    names: &TableNames,
    settings: &ReviewSettings,
    policy: &ApproverPolicy,
    req: &ReviewRequest,
    caller_arn: &str,
    now: OffsetDateTime,
) -> Result<Reviewed, ReviewFailure> {
    let (incident_id, change) = (req.incident_id.as_str(), &req.change);
    if !ir_core::correlate::is_incident_id(incident_id) {
        return Err(ReviewFailure::InvalidInput(format!(
            "`{incident_id}` is not an incident id (inc- followed by 20 hex digits)"
        )));
    }
    let checked = change.checked().map_err(refused)?;
    authorized_incident(clients, names, policy, incident_id, "", caller_arn).await?;
    let store = IncidentStore::new(clients.clone(), names.clone());
    let mut planned = Planned::default();
    // The refusal of the last planning, carried out of the store's update.
    let mut refusal: Option<ReviewFailure> = None;
    let written = store
        .write_review(incident_id, now, |current| {
            match plan(current, &checked, &settings.review, caller_arn, now) {
                Ok((next, p)) => {
                    planned = p;
                    Ok(next)
                }
                Err(e) => {
                    let why = e.to_string();
                    refusal = Some(e);
                    Err(StoreError::Conflict(why))
                }
            }
        })
        .await;
    let incident = match written {
        Ok(i) => i,
        Err(e) => {
            return Err(match refusal {
                Some(r) => r,
                None => match e {
                    StoreError::NotFound(what) => ReviewFailure::NotFound(what),
                    other => store_failed(other),
                },
            });
        }
    };
    let review = incident.review.clone().ok_or_else(|| {
        store_failed(StoreError::Verification(format!(
            "incident {incident_id} was written without its review"
        )))
    })?;
    let Planned {
        event,
        item,
        sections,
    } = planned;
    let action = match change {
        ReviewChange::Open { .. } => ir_core::audit::event::actions::REVIEW_OPENED,
        ReviewChange::Write { .. } => ir_core::audit::event::actions::REVIEW_WRITTEN,
        ReviewChange::AddItem { .. } => ir_core::audit::event::actions::REVIEW_ITEM_ADDED,
        ReviewChange::CloseItem { .. } => ir_core::audit::event::actions::REVIEW_ITEM_CLOSED,
        ReviewChange::Close => ir_core::audit::event::actions::REVIEW_CLOSED,
    };
    let Some(event) = event else {
        tracing::info!(incident_id, by = caller_arn, action, "review unchanged");
        return Ok(Reviewed {
            incident_id: incident_id.to_owned(),
            by: caller_arn.to_owned(),
            action: action.to_owned(),
            changed: false,
            seq: None,
            status: incident.summary.status,
            item,
            sections,
            review,
            anchor: None,
        });
    };
    let writer = AuditWriter::new(clients, names);
    let appended = writer
        .append_patiently(incident_id, caller_arn, &event, now)
        .await
        .map_err(|e| {
            tracing::error!(incident_id, by = caller_arn, action, error = %e, "the review changed but its audit record was not written");
            ReviewFailure::Unaudited(format!(
                "the review of {incident_id} changed ({action}) but its audit record was not written: {e}"
            ))
        })?;
    let anchor_reason = match change {
        ReviewChange::Open { .. } => Some(REVIEW_OPENED),
        ReviewChange::Close => Some(REVIEW_CLOSED),
        _ => None,
    };
    let anchor = match anchor_reason {
        Some(reason) => Some(
            writer
                .log()
                .anchor(
                    incident_id,
                    reason,
                    &settings.recorder.evidence_bucket,
                    &settings.recorder.evidence,
                    now,
                )
                .await
                .map_err(store_failed)?,
        ),
        None => None,
    };
    tracing::info!(
        incident_id,
        by = caller_arn,
        action,
        seq = appended.seq,
        "review changed; audited"
    );
    Ok(Reviewed {
        incident_id: incident_id.to_owned(),
        by: caller_arn.to_owned(),
        action: action.to_owned(),
        changed: true,
        seq: Some(appended.seq),
        status: incident.summary.status,
        item,
        sections,
        review,
        anchor,
    })
}

/// A review as `ir review show` and `ir incidents show` present it: the review, and its open
/// and overdue items as of `today`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewShown {
    pub incident_id: String,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub review: Review,
    /// The sections not written yet.
    pub missing_sections: Vec<Section>,
    /// The ids of the open items.
    pub open_items: Vec<String>,
    /// The ids of the open items past their due date.
    pub overdue_items: Vec<String>,
}

impl ReviewShown {
    /// The incident's review, if it has one, as of `today` (UTC).
    pub fn of(incident: &Incident, today: Date) -> Option<ReviewShown> {
        let review = incident.review.clone()?;
        Some(ReviewShown {
            incident_id: incident.summary.incident_id.clone(),
            status: incident.summary.status,
            resolved_at: incident.summary.timeline.resolved_at,
            missing_sections: review.sections.missing(),
            open_items: review.open_items().map(|i| i.id.clone()).collect(),
            overdue_items: review.overdue_items(today).map(|i| i.id.clone()).collect(),
            review,
        })
    }
}

/// One open action item past its due date.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverdueItem {
    pub incident_id: String,
    pub severity: Severity,
    #[serde(with = "review_day")]
    pub review_date: Date,
    /// Whole days past the due date.
    pub days_overdue: i64,
    pub item: ActionItem,
}

time::serde::format_description!(review_day, Date, "[year]-[month]-[day]");

/// Every open action item past its due date (`today`, UTC) across the incidents in postmortem,
/// most overdue first. Reads the `by-status` index, then each incident (strongly consistent).
pub async fn overdue(
    clients: &Clients,
    names: &TableNames,
    today: Date,
) -> Result<Vec<OverdueItem>, StoreError> {
    let store = IncidentStore::new(clients.clone(), names.clone());
    let mut out = Vec::new();
    for summary in store.by_status(Status::Postmortem).await? {
        let Some(incident) = store.get(&summary.incident_id).await? else {
            continue;
        };
        let Some(review) = &incident.review else {
            continue;
        };
        for item in review.overdue_items(today) {
            out.push(OverdueItem {
                incident_id: incident.summary.incident_id.clone(),
                severity: incident.summary.severity,
                review_date: review.review_date,
                days_overdue: (today - item.due).whole_days(),
                item: item.clone(),
            });
        }
    }
    out.sort_by(|a, b| {
        b.days_overdue
            .cmp(&a.days_overdue)
            .then_with(|| a.incident_id.cmp(&b.incident_id))
            .then_with(|| a.item.id.cmp(&b.item.id))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_input_is_checked_before_anything_is_read() {
        let bad = [
            ReviewChange::Open {
                date: Some("2026-4-1".into()),
            },
            ReviewChange::Write { sections: vec![] },
            ReviewChange::Write {
                sections: vec![
                    (Section::Timeline, "a".into()),
                    (Section::Timeline, "b".into()),
                ],
            },
            ReviewChange::Write {
                sections: vec![(Section::Response, "  ".into())],
            },
            ReviewChange::AddItem {
                title: "Close port 22".into(),
                owner: " ".into(),
                due: "2026-05-01".into(),
                jira_key: None,
            },
            ReviewChange::AddItem {
                title: "Close port 22".into(),
                owner: "team-web".into(),
                due: "2026-05-01".into(),
                jira_key: Some("sec-1".into()),
            },
            ReviewChange::CloseItem {
                id: "1".into(),
                closing: Closing::Done,
                note: None,
            },
            ReviewChange::CloseItem {
                id: "A1".into(),
                closing: Closing::Dropped,
                note: None,
            },
            ReviewChange::CloseItem {
                id: "A1".into(),
                closing: Closing::Done,
                note: Some("two\nlines".into()),
            },
        ];
        for change in bad {
            let e = change.checked().map_err(refused).unwrap_err();
            assert_eq!(e.error_name(), ErrorName::InvalidInput, "{change:?}: {e}");
        }
        assert!(
            ReviewChange::Close.checked().is_ok()
                && ReviewChange::Open { date: None }.checked().is_ok()
        );
    }

    #[test]
    fn refusals_keep_their_exit_meaning() {
        assert_eq!(
            refused(ReviewError::NoSuchItem { id: "A3".into() }).error_name(),
            ErrorName::NotFound
        );
        assert_eq!(
            refused(ReviewError::ItemClosed {
                id: "A1".into(),
                status: "done"
            })
            .error_name(),
            ErrorName::Conflict
        );
        assert_eq!(
            refused(ReviewError::SectionsMissing(vec![Section::Detection])).error_name(),
            ErrorName::Conflict
        );
    }
}
