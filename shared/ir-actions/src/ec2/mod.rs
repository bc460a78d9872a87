//! EC2 containment: isolate-instance, snapshot-volumes, terminate-instance, and restoring
//! isolation.
//!
//! # Isolation
//!
//! Security groups are stateful: changing an interface's groups does not end connections
//! already tracked (an established TCP flow survives until it idles out, five days by default).
//! A flow is *untracked* only while the interface's rules allow all traffic in both directions
//! for `0.0.0.0/0` and `::/0`, and untracked flows stop the moment those rules go away. So each
//! VPC gets two groups, found by name and tag and created once:
//!
//! * `ir-conversion-<vpc-id>` (`ir:group=conversion`): all traffic, IPv4 and IPv6, in and out;
//! * `ir-isolation-<vpc-id>` (`ir:group=isolation`): no rule at all (its default egress rules,
//!   `0.0.0.0/0` and in an IPv6 VPC `::/0`, are revoked);
//!
//! and each interface is set to the conversion group alone, then to the isolation group alone,
//! with `ModifyNetworkInterfaceAttribute` (`ModifyInstanceAttribute --groups` fails on an
//! instance with several interfaces).
//!
//! Before anything on the instance changes, the originals are written to the resources
//! themselves: [`TAG_ORIGINAL_GROUPS`] on each interface, [`TAG_ORIGINAL_ATTRIBUTES`] (see
//! [`encode_attributes`]) and [`TAG_INCIDENT`] on the instance. A retry after a partial failure,
//! or a repeat run, rebuilds the same [`IsolationRecord`](ir_core::action::IsolationRecord) from
//! them; a different incident's tags are refused, never overwritten.
//!
//! The instance is preserved first (termination and stop protection, `stop` on shutdown from
//! the host, no volume deleted with the instance), then the network is cut, then every
//! interface and the isolation groups are read back.
//!
//! # Snapshots
//!
//! [`snapshot_volumes`] takes one multi-volume `CreateSnapshots` (crash-consistent across the
//! volumes), tagged with the incident, finding and instance, and finds that set again by tag.
//!
//! # Termination
//!
//! [`terminate_instance`] ends an instance only when every volume attached to it has a completed
//! snapshot the incident's records name (`ir_core::termination`), lifting the termination
//! protection isolation set first. It is not restorable: its record tells release so.

mod groups;
mod isolate;
mod read;
mod restore;
mod snapshot;
mod tags;
mod terminate;

pub use isolate::{ISOLATE_ACTION, isolate_instance};
pub use restore::restore_isolation;
pub use snapshot::{SNAPSHOT_ACTION, snapshot_volumes};
pub use tags::{
    AUTOSCALING_GROUP_TAG, MAX_TAG_VALUE, TAG_FINDING, TAG_GROUP, TAG_INCIDENT, TAG_INSTANCE,
    TAG_ORIGINAL_ATTRIBUTES, TAG_ORIGINAL_GROUPS, TAG_QUARANTINED_AT, decode_attributes,
    encode_attributes,
};
pub use terminate::{TERMINATE_ACTION, terminate_instance};

/// The name of a VPC's all-allow conversion group.
pub fn conversion_group_name(vpc_id: &str) -> String {
    groups::GroupKind::Conversion.name(vpc_id)
}

/// The name of a VPC's rule-less isolation group.
pub fn isolation_group_name(vpc_id: &str) -> String {
    groups::GroupKind::Isolation.name(vpc_id)
}
