//! Finding the CloudTrail log files of the incident window in the trail bucket.
//!
//! CloudTrail delivers a trail's logs to
//! `<prefix>/AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/` (an organization trail
//! puts the organization id after `AWSLogs/`), in files named
//! `<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`. The stamp in the name is the
//! end of the delivery period, in UTC, and files arrive about every five minutes, up to about
//! fifteen minutes after the events they hold. So the files of a window `[start, end]` are those
//! stamped within `[start, end + 15 min]`, found by listing the day folder of every UTC day that
//! range touches (a day folder holds thousands of files on a busy account: listings are
//! paginated).

use aws_sdk_s3::error::ProvideErrorMetadata;

use super::join::{BoxFuture, join_all};
use crate::ActionError;
use ir_aws::Clients;

/// Files are delivered up to this long after the events they hold.
pub const DELIVERY_LAG_SECS: i64 = 15 * 60;

const SECS_PER_DAY: i64 = 86_400;

/// Where a trail delivers: the bucket and the key prefix up to (and including) the folder that
/// holds the account folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailLocation {
    pub bucket: String,
    /// `AWSLogs/` by default; `<custom prefix>/AWSLogs/` for a trail with an S3 key prefix;
    /// `AWSLogs/<org id>/` for an organization trail. Always ends with `/`.
    pub prefix: String,
}

impl TrailLocation {
    /// Parses `bucket` or `bucket/<path before the account folder>`: `trail-logs`,
    /// `trail-logs/custom/AWSLogs`, `trail-logs/AWSLogs/o-abc123def4`.
    pub fn parse(setting: &str) -> Result<TrailLocation, String> {
        let setting = setting.trim().trim_start_matches("s3://");
        let (bucket, path) = setting.split_once('/').unwrap_or((setting, ""));
        let path = path.trim_matches('/');
        let prefix = if path.is_empty() {
            "AWSLogs/".to_owned()
        } else {
            format!("{path}/")
        };
        super::check_bucket_name(bucket)
            .map_err(|why| format!("trail bucket `{bucket}`: {why}"))?;
        Ok(TrailLocation {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    /// `s3://bucket/key`, how copied objects name their source.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// The incident window in Unix seconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// `[first_seen - before, last_seen + after]`.
    pub fn new(first_seen: i64, last_seen: i64, before_secs: u64, after_secs: u64) -> Window {
        let before = i64::try_from(before_secs).unwrap_or(i64::MAX);
        let after = i64::try_from(after_secs).unwrap_or(i64::MAX);
        Window {
            start: first_seen.saturating_sub(before),
            end: last_seen.saturating_add(after),
        }
    }

    /// The earliest file stamp kept: the start, down to its minute (stamps have minutes only).
    pub fn earliest_stamp(&self) -> i64 {
        self.start - self.start.rem_euclid(60)
    }

    /// The latest file stamp kept: the end plus the delivery lag.
    pub fn latest_stamp(&self) -> i64 {
        self.end.saturating_add(DELIVERY_LAG_SECS)
    }

    /// Whether a file stamped `stamp` holds events of the window.
    pub fn keeps(&self, stamp: i64) -> bool {
        stamp >= self.earliest_stamp() && stamp <= self.latest_stamp()
    }

    /// Every UTC day (as days since 1970-01-01) the kept stamps can fall on.
    pub fn days(&self) -> Vec<i64> {
        let first = self.earliest_stamp().div_euclid(SECS_PER_DAY);
        let last = self.latest_stamp().div_euclid(SECS_PER_DAY);
        (first..=last).collect()
    }
}

/// The folder of one account, region and day.
pub fn day_prefix(location: &TrailLocation, account: &str, region: &str, day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!(
        "{}{account}/CloudTrail/{region}/{y:04}/{m:02}/{d:02}/",
        location.prefix
    )
}

/// The stamp (Unix seconds) of a CloudTrail log file of `account` and `region`, from its key;
/// `None` for anything else (digests, other accounts or regions, unrelated objects).
pub fn file_stamp(key: &str, account: &str, region: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    let rest = name
        .strip_prefix(account)?
        .strip_prefix("_CloudTrail_")?
        .strip_prefix(region)?
        .strip_prefix('_')?;
    let (stamp, unique) = rest.split_once('_')?;
    if unique.strip_suffix(".json.gz").is_none_or(str::is_empty) {
        return None;
    }
    parse_stamp(stamp)
}

/// `YYYYMMDDTHHmmZ` → Unix seconds.
pub fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 14 || b[8] != b'T' || b[13] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d, h, mi) = (
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let t = secs.rem_euclid(SECS_PER_DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// One log file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    pub key: String,
    pub size: u64,
    pub stamp: i64,
}

/// What the listing found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The log files of the window, oldest first (key order within a folder is stamp order).
    pub objects: Vec<LogObject>,
    /// Objects listed in the day folders, kept or not.
    pub listed: usize,
    /// The folders listed.
    pub prefixes: Vec<String>,
}

/// Lists the day folders of `regions` for the window, concurrently, each to its last page.
pub async fn list_window(
    clients: &Clients,
    location: &TrailLocation,
    account: &str,
    regions: &[String],
    window: Window,
) -> Result<Listing, ActionError> {
    let mut jobs: Vec<(String, &str)> = Vec::new();
    for region in regions {
        for day in window.days() {
            jobs.push((day_prefix(location, account, region, day), region.as_str()));
        }
    }
    let prefixes: Vec<String> = jobs.iter().map(|(p, _)| p.clone()).collect();
    let futures: Vec<BoxFuture<'_, Result<DayListing, ActionError>>> = jobs
        .into_iter()
        .map(|(prefix, region)| {
            Box::pin(list_day(clients, location, account, region, prefix, window))
                as BoxFuture<'_, _>
        })
        .collect();
    let mut listing = Listing {
        prefixes,
        ..Listing::default()
    };
    for result in join_all(futures).await {
        let (listed, kept) = result?;
        listing.listed += listed;
        listing.objects.extend(kept);
    }
    listing
        .objects
        .sort_by(|a, b| (a.stamp, &a.key).cmp(&(b.stamp, &b.key)));
    listing.objects.dedup_by(|a, b| a.key == b.key);
    Ok(listing)
}

/// Objects listed in one day folder, and the log files of the window among them.
type DayListing = (usize, Vec<LogObject>);

async fn list_day(
    clients: &Clients,
    location: &TrailLocation,
    account: &str,
    region: &str,
    prefix: String,
    window: Window,
) -> Result<DayListing, ActionError> {
    let mut listed = 0;
    let mut kept = Vec::new();
    let mut pages = clients
        .s3()
        .list_objects_v2()
        .bucket(&location.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let missing = e.code() == Some("NoSuchBucket");
            let err = ActionError::sdk("s3:ListObjectsV2", e);
            if missing {
                ActionError::Configuration(format!(
                    "the trail bucket `{}` does not exist (IR_TRAIL_BUCKET): {err}",
                    location.bucket
                ))
            } else {
                err
            }
        })?;
        for object in page.contents() {
            listed += 1;
            let Some(key) = object.key() else { continue };
            if let Some(stamp) = file_stamp(key, account, region)
                && window.keeps(stamp)
            {
                let size = object
                    .size()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or_default();
                kept.push(LogObject {
                    key: key.to_owned(),
                    size,
                    stamp,
                });
            }
        }
        // The paginator follows NextContinuationToken; a listing that is not truncated is the
        // last page whatever token it carries.
        if page.is_truncated() != Some(true) {
            break;
        }
    }
    Ok((listed, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
        days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + s
    }

    #[test]
    fn calendar_round_trips() {
        for day in [-800_000, -1, 0, 1, 11_016, 20_000, 20_413, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(rfc3339(at(2026, 11, 20, 23, 5, 9)), "2026-11-20T23:05:09Z");
    }

    #[test]
    fn stamps_parse_strictly() {
        assert_eq!(
            parse_stamp("20261120T2355Z"),
            Some(at(2026, 11, 20, 23, 55, 0))
        );
        assert_eq!(
            parse_stamp("20240229T0000Z"),
            Some(at(2024, 2, 29, 0, 0, 0))
        );
        for bad in [
            "20230229T0000Z",
            "20261120T2460Z",
            "20261320T0000Z",
            "2026112T02355Z",
            "20261120 2355Z",
            "20261120T2355",
            "+0261120T2355Z",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
        let key = "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/20/123456789012_CloudTrail_eu-west-1_20261120T2355Z_AbC123.json.gz";
        assert_eq!(
            file_stamp(key, ACCOUNT, "eu-west-1"),
            Some(at(2026, 11, 20, 23, 55, 0))
        );
        assert_eq!(file_stamp(key, ACCOUNT, "us-east-1"), None);
        assert_eq!(file_stamp(key, "210987654321", "eu-west-1"), None);
        assert_eq!(
            file_stamp(
                "x/123456789012_CloudTrail-Digest_eu-west-1_t_eu-west-1_20261120T235500Z.json.gz",
                ACCOUNT,
                "eu-west-1"
            ),
            None
        );
        assert_eq!(
            file_stamp(
                "x/123456789012_CloudTrail_eu-west-1_20261120T2355Z_.json.gz",
                ACCOUNT,
                "eu-west-1"
            ),
            None
        );
        assert_eq!(
            file_stamp(
                "x/123456789012_CloudTrail_eu-west-1_20261120T2355Z_a.json",
                ACCOUNT,
                "eu-west-1"
            ),
            None
        );
    }

    #[test]
    fn window_keeps_stamps_up_to_the_delivery_lag_and_spans_days() {
        let w = Window::new(
            at(2026, 11, 20, 23, 30, 30),
            at(2026, 11, 21, 0, 10, 0),
            3600,
            900,
        );
        assert_eq!(w.start, at(2026, 11, 20, 22, 30, 30));
        assert_eq!(w.end, at(2026, 11, 21, 0, 25, 0));
        assert!(
            w.keeps(at(2026, 11, 20, 22, 30, 0)),
            "the start's own minute is kept"
        );
        assert!(!w.keeps(at(2026, 11, 20, 22, 29, 0)));
        assert!(w.keeps(at(2026, 11, 21, 0, 40, 0)));
        assert!(!w.keeps(at(2026, 11, 21, 0, 41, 0)));
        assert_eq!(
            w.days(),
            vec![days_from_civil(2026, 11, 20), days_from_civil(2026, 11, 21)]
        );
        // The delivery lag alone can reach into the next day.
        let late = Window::new(
            at(2026, 12, 31, 23, 40, 0),
            at(2026, 12, 31, 23, 50, 0),
            0,
            0,
        );
        assert_eq!(late.days().len(), 2);
        let loc = TrailLocation::parse("trail").unwrap();
        assert_eq!(
            day_prefix(&loc, ACCOUNT, "us-east-1", late.days()[1]),
            "AWSLogs/123456789012/CloudTrail/us-east-1/2027/01/01/"
        );
    }

    #[test]
    fn trail_locations() {
        assert_eq!(
            TrailLocation::parse("trail-logs").unwrap(),
            TrailLocation {
                bucket: "trail-logs".into(),
                prefix: "AWSLogs/".into()
            }
        );
        assert_eq!(
            TrailLocation::parse("s3://trail-logs/").unwrap().prefix,
            "AWSLogs/"
        );
        assert_eq!(
            TrailLocation::parse("trail-logs/custom/AWSLogs")
                .unwrap()
                .prefix,
            "custom/AWSLogs/"
        );
        assert_eq!(
            TrailLocation::parse("trail-logs/AWSLogs/o-abc123def4/")
                .unwrap()
                .prefix,
            "AWSLogs/o-abc123def4/"
        );
        assert!(TrailLocation::parse("Trail_Logs").is_err());
        assert!(TrailLocation::parse("").is_err());
    }
}
