//! The tags isolation writes, and the encoding of the originals it keeps in them.
//!
//! The originals (each interface's security groups, the instance's protection attributes) are
//! written to the resources themselves before anything is changed, for people looking at them.
//! They are never read back as truth: anyone who can tag the instance can write them, so the
//! originals a retry or a release uses come from the incident's hold in the keys table
//! (`ir_aws::store::IsolationHolds`) and its containment records. A tag value
//! holds at most 256 characters: longer values are split on token boundaries over `key`,
//! `key-2`, `key-3`, …

#[cfg(test)]
use std::collections::BTreeMap;

use ir_core::action::{InstanceAttributes, VolumeAttachment};

/// The incident that contains a resource (instance, interface, snapshot).
pub const TAG_INCIDENT: &str = "ir:incident";
/// The finding a snapshot was taken for.
pub const TAG_FINDING: &str = "ir:finding";
/// The instance a snapshot was taken from.
pub const TAG_INSTANCE: &str = "ir:instance";
/// On an interface: its security groups before isolation, in order, space-separated.
pub const TAG_ORIGINAL_GROUPS: &str = "ir:original-groups";
/// On an instance: its protection attributes before isolation (see [`encode_attributes`]).
pub const TAG_ORIGINAL_ATTRIBUTES: &str = "ir:original-attributes";
/// On an instance: when isolation began (RFC 3339, UTC).
pub const TAG_QUARANTINED_AT: &str = "ir:quarantined-at";
/// On the suite's security groups: `conversion` or `isolation`.
pub const TAG_GROUP: &str = "ir:group";
/// The tag EC2 Auto Scaling puts on the instances of a group.
pub const AUTOSCALING_GROUP_TAG: &str = "aws:autoscaling:groupName";

/// The longest EC2 tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// The key of the `index`-th (0-based) part of a split value: `key`, `key-2`, `key-3`, …
pub(crate) fn part_key(key: &str, index: usize) -> String {
    if index == 0 {
        key.to_owned()
    } else {
        format!("{key}-{}", index + 1)
    }
}

/// Whether `candidate` is `key` or one of its continuation keys (`key-2`, …).
pub(crate) fn is_part_of(candidate: &str, key: &str) -> bool {
    candidate == key
        || candidate
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits space-separated tokens over as few tag values as possible, each at most
/// [`MAX_TAG_VALUE`] characters, never inside a token. No tokens give one empty value.
pub(crate) fn split_value(key: &str, tokens: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for token in tokens {
        let len = token.chars().count();
        if len > MAX_TAG_VALUE || token.is_empty() || token.contains(char::is_whitespace) {
            return Err(format!("`{token}` cannot be stored in tag {key}"));
        }
        let needed = if current.is_empty() {
            len
        } else {
            current.chars().count() + 1 + len
        };
        if needed > MAX_TAG_VALUE {
            parts.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(token);
    }
    parts.push(current);
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, v)| (part_key(key, i), v))
        .collect())
}

/// The value split over `key`, `key-2`, … joined back; `None` when `key` itself is absent.
/// Only tests read the tags back: the suite never takes them as truth.
#[cfg(test)]
pub(crate) fn joined_value(tags: &BTreeMap<String, String>, key: &str) -> Option<String> {
    let mut value = tags.get(key)?.clone();
    let mut index = 1;
    while let Some(part) = tags.get(&part_key(key, index)) {
        if !value.is_empty() && !part.is_empty() {
            value.push(' ');
        }
        value.push_str(part);
        index += 1;
    }
    Some(value)
}

/// The tokens of [`TAG_ORIGINAL_ATTRIBUTES`]: `term=0|1` (DisableApiTermination), `stop=0|1`
/// (DisableApiStop), `shutdown=stop|terminate` (InstanceInitiatedShutdownBehavior), then one
/// `vol=<device>,<volume-id>,<0|1>` per EBS volume (DeleteOnTermination), in mapping order.
pub fn encode_attributes(a: &InstanceAttributes) -> Vec<String> {
    let bit = |b: bool| if b { "1" } else { "0" };
    let mut tokens = vec![
        format!("term={}", bit(a.disable_api_termination)),
        format!("stop={}", bit(a.disable_api_stop)),
        format!("shutdown={}", a.shutdown_behavior),
    ];
    tokens.extend(a.volumes.iter().map(|v| {
        format!(
            "vol={},{},{}",
            v.device_name,
            v.volume_id,
            bit(v.delete_on_termination)
        )
    }));
    tokens
}

/// Reads back what [`encode_attributes`] wrote.
pub fn decode_attributes(value: &str) -> Result<InstanceAttributes, String> {
    let flag = |v: &str, what: &str| match v {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(format!("{what}={other} is not 0 or 1")),
    };
    let (mut term, mut stop, mut shutdown) = (None, None, None);
    let mut volumes = Vec::new();
    for token in value.split_whitespace() {
        let Some((name, v)) = token.split_once('=') else {
            return Err(format!("`{token}` is not name=value"));
        };
        match name {
            "term" => term = Some(flag(v, name)?),
            "stop" => stop = Some(flag(v, name)?),
            "shutdown" if !v.is_empty() => shutdown = Some(v.to_owned()),
            "vol" => {
                let mut fields = v.split(',');
                match (fields.next(), fields.next(), fields.next(), fields.next()) {
                    (Some(device), Some(volume), Some(dot), None)
                        if !device.is_empty() && !volume.is_empty() =>
                    {
                        volumes.push(VolumeAttachment {
                            device_name: device.to_owned(),
                            volume_id: volume.to_owned(),
                            delete_on_termination: flag(dot, "vol")?,
                        });
                    }
                    _ => return Err(format!("`{token}` is not vol=<device>,<volume-id>,<0|1>")),
                }
            }
            _ => return Err(format!("unknown field `{token}`")),
        }
    }
    match (term, stop, shutdown) {
        (Some(disable_api_termination), Some(disable_api_stop), Some(shutdown_behavior)) => {
            Ok(InstanceAttributes {
                disable_api_termination,
                disable_api_stop,
                shutdown_behavior,
                volumes,
            })
        }
        _ => Err("term, stop and shutdown are all required".to_owned()),
    }
}

/// A time as an RFC 3339 UTC timestamp, to the second.
pub(crate) fn rfc3339_seconds(at: time::OffsetDateTime) -> String {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    let secs = at.unix_timestamp();
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attrs(volumes: usize) -> InstanceAttributes {
        InstanceAttributes {
            disable_api_termination: false,
            disable_api_stop: true,
            shutdown_behavior: "terminate".into(),
            volumes: (0..volumes)
                .map(|i| VolumeAttachment {
                    device_name: format!(
                        "/dev/xvd{}",
                        char::from(b'a' + u8::try_from(i % 26).unwrap())
                    ),
                    volume_id: format!("vol-{i:017x}"),
                    delete_on_termination: i % 2 == 0,
                })
                .collect(),
        }
    }

    #[test]
    fn attributes_round_trip_through_split_tags() {
        for n in [0, 1, 2, 7, 20] {
            let a = attrs(n);
            let parts = split_value(TAG_ORIGINAL_ATTRIBUTES, &encode_attributes(&a)).unwrap();
            assert!(
                parts
                    .iter()
                    .all(|(_, v)| v.chars().count() <= MAX_TAG_VALUE)
            );
            if n >= 7 {
                assert!(parts.len() > 1, "{n} volumes must be split: {parts:?}");
            }
            let tags: BTreeMap<String, String> = parts.into_iter().collect();
            let back =
                decode_attributes(&joined_value(&tags, TAG_ORIGINAL_ATTRIBUTES).unwrap()).unwrap();
            assert_eq!(back, a);
        }
    }

    #[test]
    fn many_groups_are_split_and_joined_in_order() {
        let groups: Vec<String> = (0..16).map(|i| format!("sg-{i:017x}")).collect();
        let parts = split_value(TAG_ORIGINAL_GROUPS, &groups).unwrap();
        let keys: Vec<&str> = parts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ir:original-groups", "ir:original-groups-2"]);
        let tags: BTreeMap<String, String> = parts.into_iter().collect();
        let joined = joined_value(&tags, TAG_ORIGINAL_GROUPS).unwrap();
        assert_eq!(joined.split_whitespace().collect::<Vec<_>>(), groups);
        assert!(is_part_of("ir:original-groups-2", TAG_ORIGINAL_GROUPS));
        assert!(!is_part_of("ir:original-groups-x", TAG_ORIGINAL_GROUPS));
        assert!(!is_part_of("ir:original-attributes", TAG_ORIGINAL_GROUPS));
    }

    #[test]
    fn no_tokens_is_one_empty_value_and_absent_is_none() {
        assert_eq!(
            split_value("k", &[]).unwrap(),
            vec![("k".to_owned(), String::new())]
        );
        assert_eq!(joined_value(&BTreeMap::new(), "k"), None);
    }

    #[test]
    fn malformed_attributes_are_refused() {
        for bad in [
            "",
            "term=0 stop=0",
            "term=2 stop=0 shutdown=stop",
            "term=0 stop=0 shutdown=stop vol=/dev/x,vol-1",
            "x",
        ] {
            assert!(decode_attributes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        let t = rfc3339_seconds(time::OffsetDateTime::now_utc());
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'), "{t}");
    }
}
