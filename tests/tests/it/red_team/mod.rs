//! The red team: each way an attacker inside the account (or a careless operator) could make the
//! suite change something nobody approved is tried here, and must be refused with a stable error
//! and an audit record. One module per area of the trust model (ARCHITECTURE.md, "Trust model").

mod gates;
mod markers;
mod release;
