//! The evidence manifest document: what collect-evidence writes last, as its own locked object
//! (`incidents/<incident id>/manifests/<step id>.json`), and what `ir report` reads back.
//!
//! The document is pretty-printed JSON whose fields come out in the order declared here (the
//! nested objects' fields in alphabetical order). Reading needs `schema`, `bucket`, `incidentId`
//! and `objects`; the other fields default when absent, so a reader never refuses a manifest for
//! a field it does not use, and checks the schema itself ([`MANIFEST_SCHEMA`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::action::EvidenceObject;

/// The `schema` of manifest documents.
pub const MANIFEST_SCHEMA: &str = "ir-evidence-manifest/1";

/// The manifest document stored in the evidence bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDocument {
    /// [`MANIFEST_SCHEMA`] when written here.
    pub schema: String,
    /// The evidence bucket.
    pub bucket: String,
    pub incident_id: String,
    #[serde(default)]
    pub finding_id: String,
    #[serde(default)]
    pub step_id: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub region: String,
    /// The resource described.
    #[serde(default)]
    pub resource: ManifestResource,
    /// The identity that wrote the objects.
    #[serde(default)]
    pub collected_by: String,
    /// When the last object before the manifest was written (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339", default = "epoch")]
    pub completed_at: OffsetDateTime,
    #[serde(default)]
    pub object_lock: ObjectLockSummary,
    #[serde(default)]
    pub cloudtrail: CloudTrailSummary,
    /// Every object collected, by version.
    pub objects: Vec<EvidenceObject>,
    /// The notes of the step's report.
    #[serde(default)]
    pub notes: Vec<String>,
}

fn epoch() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// The resource a manifest's description is of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestResource {
    pub id: String,
    /// [`ResourceKind::as_str`](crate::ResourceKind::as_str).
    pub kind: String,
}

/// How every object of the manifest is locked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockSummary {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    pub retention_days: u32,
}

/// Whether CloudTrail logs were collected, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudTrailSummary {
    pub collected: bool,
    /// The window, when logs were collected.
    #[serde(flatten)]
    pub window: Option<CloudTrailWindow>,
}

/// The CloudTrail window a manifest's log files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailWindow {
    /// Log files of the window.
    pub files_in_window: u64,
    /// Log files of the window not copied (`evidence.max_log_objects`).
    pub files_left_out: u64,
    pub max_log_objects: u64,
    /// Objects listed in the day folders, kept or not.
    pub objects_listed: u64,
    /// The day folders listed.
    pub prefixes: Vec<String>,
    pub regions: Vec<String>,
    /// The earliest and latest delivery stamps of the files kept (RFC 3339).
    pub stamps_from: String,
    pub stamps_to: String,
    /// The trail bucket.
    pub trail_bucket: String,
    /// The incident window (RFC 3339).
    pub window_end: String,
    pub window_start: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(cloudtrail: CloudTrailSummary) -> ManifestDocument {
        ManifestDocument {
            schema: MANIFEST_SCHEMA.to_owned(),
            bucket: "ev".into(),
            incident_id: "inc-0123456789abcdef0123".into(),
            finding_id: "f1".into(),
            step_id: "collect-evidence".into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            resource: ManifestResource {
                id: "i-0abc".into(),
                kind: "ec2-instance".into(),
            },
            collected_by: "arn:aws:sts::111122223333:assumed-role/ir/x".into(),
            completed_at: OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
            object_lock: ObjectLockSummary {
                mode: "COMPLIANCE".into(),
                retention_days: 1,
            },
            cloudtrail,
            objects: vec![],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn documents_round_trip() {
        let window = CloudTrailWindow {
            files_in_window: 3,
            files_left_out: 1,
            max_log_objects: 2,
            objects_listed: 10,
            prefixes: vec!["p/".into()],
            regions: vec!["us-east-1".into()],
            stamps_from: "2026-11-20T09:55:00Z".into(),
            stamps_to: "2026-11-20T10:10:00Z".into(),
            trail_bucket: "trail".into(),
            window_end: "2026-11-20T10:05:00Z".into(),
            window_start: "2026-11-20T09:55:00Z".into(),
        };
        for cloudtrail in [
            CloudTrailSummary::default(),
            CloudTrailSummary {
                collected: true,
                window: Some(window),
            },
        ] {
            let d = document(cloudtrail);
            let bytes = serde_json::to_vec_pretty(&d).unwrap();
            let back: ManifestDocument = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, d);
        }
        let v = serde_json::to_value(document(CloudTrailSummary::default())).unwrap();
        assert_eq!(v["cloudtrail"], json!({"collected": false}));
        assert_eq!(v["completedAt"], "2026-11-18T11:06:40Z");
    }

    #[test]
    fn reading_needs_only_what_readers_use() {
        let d: ManifestDocument = serde_json::from_value(json!({
            "schema": "ir-evidence-manifest/2",
            "bucket": "ev",
            "incidentId": "inc-0123456789abcdef0123",
            "objects": [],
            "somethingNew": true,
        }))
        .unwrap();
        assert_eq!(d.schema, "ir-evidence-manifest/2");
        assert_eq!(d.completed_at, OffsetDateTime::UNIX_EPOCH);
        for missing in ["schema", "bucket", "incidentId", "objects"] {
            let mut v = serde_json::to_value(document(CloudTrailSummary::default())).unwrap();
            v.as_object_mut().unwrap().remove(missing);
            assert!(
                serde_json::from_value::<ManifestDocument>(v).is_err(),
                "{missing}"
            );
        }
    }
}
