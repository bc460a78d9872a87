//! The rule a termination is held to: an instance is terminated only when every volume attached
//! to it now has a completed snapshot taken for the incident.
//!
//! "Taken for the incident" is what the suite recorded: an enforced run of snapshot-volumes in
//! the incident's audit chain, naming the snapshots it took (or found) of the instance
//! ([`recorded_snapshots`]). Tags on a snapshot are not read: anyone who may tag a snapshot can
//! write them. What EC2 says of each recorded snapshot now is then held against the record
//! ([`backing`]): the snapshot still exists, is of that volume, is `completed`, and was started
//! after the incident was detected (an older snapshot cannot hold what the intruder did, whatever
//! a record says).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::action::{SnapshotRef, VolumeAttachment};
use crate::audit::AuditRecord;
use crate::audit::event::{AuditEvent, StepArtifacts, actions};
use crate::config::Mode;

/// The function whose recorded results hold an incident's snapshots.
pub const SNAPSHOT_FUNCTION: &str = "ir-snapshot-volumes";

/// The state EBS gives a snapshot whose data is all copied.
pub const COMPLETED: &str = "completed";

/// One snapshot as EC2 describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotState {
    pub snapshot_id: String,
    pub volume_id: String,
    /// `pending`, `completed`, `error`, `recoverable`, `recovering`.
    pub state: String,
    /// How much is copied (`45%`), when EC2 says.
    pub progress: Option<String>,
    pub start_time: Option<OffsetDateTime>,
}

/// A volume attached to the instance and the snapshot that backs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    pub volume: VolumeAttachment,
    pub snapshot_id: String,
    pub start_time: OffsetDateTime,
}

/// Every snapshot of `instance_id` that the chain records from an enforced run of
/// snapshot-volumes, in chain order, each once. Records that cannot be read as step results, dry
/// runs, and other instances' snapshots are left out.
pub fn recorded_snapshots(chain: &[AuditRecord], instance_id: &str) -> Vec<SnapshotRef> {
    let action = format!("{}{SNAPSHOT_FUNCTION}", actions::STEP_PREFIX);
    let mut out: Vec<SnapshotRef> = Vec::new();
    for record in chain.iter().filter(|r| r.action == action) {
        let Ok(AuditEvent::Step(step)) = record.event() else {
            continue;
        };
        if step.function != SNAPSHOT_FUNCTION || step.mode != Mode::Enforce {
            continue;
        }
        let Some(StepArtifacts::Snapshots(taken)) = step.artifacts else {
            continue;
        };
        if taken.instance_id != instance_id {
            continue;
        }
        for s in taken.snapshots {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The snapshot backing each attached volume (the latest started one that qualifies), or, when
/// any volume has none, one line per such volume naming it and saying why. An instance without
/// an EBS volume has nothing that could back its termination: refused too.
///
/// # Errors
/// The lines, in the order of `attached`.
pub fn backing(
    attached: &[VolumeAttachment],
    recorded: &[SnapshotRef],
    described: &[SnapshotState],
    detected_at: OffsetDateTime,
) -> Result<Vec<Backing>, Vec<String>> {
    if attached.is_empty() {
        return Err(vec![
            "the instance has no EBS volume: no snapshot can back its termination".to_owned(),
        ]);
    }
    let mut backed = Vec::new();
    let mut problems = Vec::new();
    for volume in attached {
        let at = format!("{} ({})", volume.volume_id, volume.device_name);
        let candidates: Vec<&SnapshotRef> = recorded
            .iter()
            .filter(|r| r.volume_id == volume.volume_id)
            .collect();
        if candidates.is_empty() {
            problems.push(format!(
                "{at} has no snapshot taken for this incident (attached after the incident's \
                 snapshots were taken, or never snapshotted)"
            ));
            continue;
        }
        let mut why = Vec::new();
        let mut best: Option<Backing> = None;
        for c in candidates {
            let id = &c.snapshot_id;
            let Some(s) = described.iter().find(|d| d.snapshot_id == *id) else {
                why.push(format!(
                    "snapshot {id} is recorded but EC2 no longer lists it"
                ));
                continue;
            };
            if s.volume_id != volume.volume_id {
                why.push(format!("snapshot {id} is of {}, not of it", s.volume_id));
                continue;
            }
            if s.state != COMPLETED {
                let progress = s
                    .progress
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                why.push(format!("snapshot {id} is {}{progress}", s.state));
                continue;
            }
            let Some(started) = s.start_time else {
                why.push(format!("snapshot {id} has no start time"));
                continue;
            };
            if started < detected_at {
                why.push(format!(
                    "snapshot {id} was started at {}, before the incident was detected ({})",
                    stamp(started),
                    stamp(detected_at)
                ));
                continue;
            }
            if best.as_ref().is_none_or(|b| b.start_time < started) {
                best = Some(Backing {
                    volume: volume.clone(),
                    snapshot_id: id.clone(),
                    start_time: started,
                });
            }
        }
        match best {
            Some(b) => backed.push(b),
            None => problems.push(format!(
                "{at} has no completed snapshot taken for this incident: {}",
                why.join("; ")
            )),
        }
    }
    if problems.is_empty() {
        Ok(backed)
    } else {
        Err(problems)
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::audit::event::{SnapshotArtifacts, StepAudit};

    const DETECTED: OffsetDateTime = datetime!(2026-11-20 10:00 UTC);

    fn volume(id: &str, device: &str) -> VolumeAttachment {
        VolumeAttachment {
            device_name: device.to_owned(),
            volume_id: id.to_owned(),
            delete_on_termination: false,
        }
    }

    fn snap(snapshot: &str, volume: &str) -> SnapshotRef {
        SnapshotRef {
            snapshot_id: snapshot.to_owned(),
            volume_id: volume.to_owned(),
        }
    }

    fn state(snapshot: &str, volume: &str, state: &str, started: OffsetDateTime) -> SnapshotState {
        SnapshotState {
            snapshot_id: snapshot.to_owned(),
            volume_id: volume.to_owned(),
            state: state.to_owned(),
            progress: Some(if state == COMPLETED { "100%" } else { "45%" }.to_owned()),
            start_time: Some(started),
        }
    }

    fn step_record(
        seq: u64,
        function: &str,
        mode: Mode,
        instance: &str,
        snaps: &[SnapshotRef],
    ) -> AuditRecord {
        let step = StepAudit {
            step: "snapshot-volumes".to_owned(),
            function: function.to_owned(),
            outcome: crate::action::Outcome::Applied,
            mode,
            changes: Vec::new(),
            record: false,
            artifacts: Some(StepArtifacts::Snapshots(SnapshotArtifacts {
                instance_id: instance.to_owned(),
                snapshots: snaps.to_vec(),
            })),
            notes: Vec::new(),
            aws_calls: 1,
        };
        let event = AuditEvent::Step(step);
        AuditRecord {
            incident_id: "inc-0123456789abcdef0123".to_owned(),
            seq,
            at: DETECTED,
            actor: "ir-record".to_owned(),
            action: event.action().into_owned(),
            detail: event.detail().unwrap(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn only_enforced_snapshot_runs_of_the_instance_are_recorded_snapshots() {
        let a = snap("snap-a", "vol-a");
        let b = snap("snap-b", "vol-b");
        let chain = vec![
            step_record(
                0,
                SNAPSHOT_FUNCTION,
                Mode::DryRun,
                "i-1",
                &[snap("snap-dry", "vol-a")],
            ),
            step_record(
                1,
                SNAPSHOT_FUNCTION,
                Mode::Enforce,
                "i-1",
                std::slice::from_ref(&a),
            ),
            step_record(
                2,
                SNAPSHOT_FUNCTION,
                Mode::Enforce,
                "i-other",
                &[snap("snap-o", "vol-o")],
            ),
            step_record(
                3,
                "ir-isolate-instance",
                Mode::Enforce,
                "i-1",
                &[snap("snap-i", "vol-a")],
            ),
            // A repeat run finds the same set again, with one more volume's.
            step_record(
                4,
                SNAPSHOT_FUNCTION,
                Mode::Enforce,
                "i-1",
                &[a.clone(), b.clone()],
            ),
            AuditRecord {
                detail: json!({"not": "a step"}),
                ..step_record(
                    5,
                    SNAPSHOT_FUNCTION,
                    Mode::Enforce,
                    "i-1",
                    &[snap("snap-x", "vol-x")],
                )
            },
        ];
        assert_eq!(recorded_snapshots(&chain, "i-1"), vec![a, b]);
        assert!(recorded_snapshots(&chain, "i-none").is_empty());
    }

    #[test]
    fn every_attached_volume_needs_a_completed_snapshot_started_after_detection() {
        let attached = [volume("vol-a", "/dev/xvda"), volume("vol-b", "/dev/xvdb")];
        let after = DETECTED + time::Duration::minutes(5);
        let recorded = [snap("snap-a", "vol-a"), snap("snap-b", "vol-b")];
        let described = [
            state("snap-a", "vol-a", COMPLETED, after),
            state("snap-b", "vol-b", COMPLETED, after),
        ];
        let backed = backing(&attached, &recorded, &described, DETECTED).unwrap();
        assert_eq!(
            backed
                .iter()
                .map(|b| (b.volume.volume_id.as_str(), b.snapshot_id.as_str()))
                .collect::<Vec<_>>(),
            [("vol-a", "snap-a"), ("vol-b", "snap-b")]
        );

        // One volume without a recorded snapshot (attached afterwards): refused, naming it only.
        let why = backing(&attached, &recorded[..1], &described, DETECTED).unwrap_err();
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].starts_with("vol-b (/dev/xvdb) has no snapshot taken"),
            "{why:?}"
        );

        // A pending snapshot, one in error, one EC2 no longer lists, one older than the incident.
        for (described, says) in [
            (
                state("snap-b", "vol-b", "pending", after),
                "snapshot snap-b is pending (45%)",
            ),
            (
                state("snap-b", "vol-b", "error", after),
                "snapshot snap-b is error",
            ),
            (
                state("snap-gone", "vol-b", COMPLETED, after),
                "snapshot snap-b is recorded but EC2 no longer lists it",
            ),
            (
                state(
                    "snap-b",
                    "vol-b",
                    COMPLETED,
                    DETECTED - time::Duration::days(30),
                ),
                "snapshot snap-b was started at 2026-10-21T10:00:00Z, before the incident was \
                 detected (2026-11-20T10:00:00Z)",
            ),
            (
                state("snap-b", "vol-other", COMPLETED, after),
                "snapshot snap-b is of vol-other, not of it",
            ),
        ] {
            let all = [
                described.clone(),
                state("snap-a", "vol-a", COMPLETED, after),
            ];
            let why = backing(&attached, &recorded, &all, DETECTED).unwrap_err();
            assert_eq!(why.len(), 1, "{why:?}");
            assert!(
                why[0].starts_with("vol-b (/dev/xvdb) has no completed snapshot")
                    && why[0].contains(says),
                "{why:?} should say {says}"
            );
        }

        // Two recorded snapshots of a volume: the latest good one backs it; a bad one does not
        // spoil it.
        let recorded = [
            snap("snap-a", "vol-a"),
            snap("snap-old", "vol-b"),
            snap("snap-b", "vol-b"),
            snap("snap-pending", "vol-b"),
        ];
        let described = [
            state("snap-a", "vol-a", COMPLETED, after),
            state("snap-old", "vol-b", COMPLETED, after),
            state(
                "snap-b",
                "vol-b",
                COMPLETED,
                after + time::Duration::minutes(1),
            ),
            state(
                "snap-pending",
                "vol-b",
                "pending",
                after + time::Duration::minutes(2),
            ),
        ];
        let backed = backing(&attached, &recorded, &described, DETECTED).unwrap();
        assert_eq!(backed[1].snapshot_id, "snap-b");

        // Nothing to snapshot is nothing to back a termination with.
        let why = backing(&[], &recorded, &described, DETECTED).unwrap_err();
        assert!(why[0].contains("no EBS volume"), "{why:?}");
    }
}
