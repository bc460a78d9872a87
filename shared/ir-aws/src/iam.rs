//! IAM containment: revoke-sessions, deny-principal, disable-access-keys, and restoring them.
