//! Counting the AWS API calls a function makes (an SDK interceptor on every client).

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Every operation started through the clients it is attached to, as `service:Operation`, in
/// order (retries of one operation count once).
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<String>>>,
}

impl CallLog {
    /// The number of operations so far.
    pub fn count(&self) -> usize {
        self.calls.lock().map(|c| c.len()).unwrap_or_default()
    }

    /// The operations since `mark` (a previous [`CallLog::count`]).
    pub fn since(&self, mark: usize) -> Vec<String> {
        self.calls
            .lock()
            .map(|c| c.get(mark..).map(<[String]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The number of operations since `mark`, as reported in an action's `awsCalls`.
    pub fn count_since(&self, mark: usize) -> u32 {
        u32::try_from(self.count().saturating_sub(mark)).unwrap_or(u32::MAX)
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    // Before serialization rather than before execution: once per operation (not per attempt),
    // and late enough that the operation's metadata is in the config bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or_else(
            || "unknown".to_owned(),
            |m| format!("{}:{}", m.service(), m.name()),
        );
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(op);
        }
        Ok(())
    }
}
