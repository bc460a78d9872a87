//! Running a few independent AWS calls at once on the current task.
//!
//! The describe calls of one resource, the day listings of the CloudTrail window and the log
//! copies are independent; awaiting them one after the other would put their latencies end to
//! end on the action's critical path. `join_all` polls them concurrently on the invoking task
//! (no spawning: the futures may borrow the request and the clients) and returns their outputs
//! in input order.

pub use futures_util::future::{BoxFuture, join_all};
