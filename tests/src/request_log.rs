//! What the suite's clients really put on the wire, for the assertions the call log cannot make.
//!
//! [`ir_aws::CallLog`] names every operation (`EC2:CreateSnapshots`), which is all most tests
//! need. A [`RequestLog`] reads the serialized request of every operation on the query-protocol
//! clients it is attached to (EC2, IAM): its `Action`, whether it carried `DryRun=true`, and every
//! parameter sent (the security groups an interface was set to, the key an `UpdateAccessKey`
//! named). Its marks also cover the call log, and [`RequestLog::ops_since`] checks that both saw
//! the same operations. It can also make chosen requests fail before they are sent
//! ([`RequestLog::fail_sending`]), as a dropped connection would.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::BoxError;
use ir_aws::CallLog;

use crate::support::percent_decode;

/// One operation as serialized: the service it went to, its `Action` and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// The service label the interceptor was made with (`EC2`, `IAM`), as the call log names it.
    pub service: &'static str,
    /// The query's `Action` (`unknown` when the body has none).
    pub operation: String,
    /// The body's parameters in the order sent, percent-decoded.
    pub params: Vec<(String, String)>,
}

impl SentRequest {
    fn from_body(service: &'static str, body: &str) -> SentRequest {
        let params: Vec<(String, String)> = body
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let operation = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.clone());
        SentRequest {
            service,
            operation,
            params,
        }
    }

    /// The value of parameter `name`, if it was sent.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The flat list parameter `name` (`name.1`, `name.2`, ...), in index order; empty if absent.
    #[must_use]
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut items: Vec<(usize, String)> = self
            .params
            .iter()
            .filter_map(|(k, v)| {
                let index = k.strip_prefix(name)?.strip_prefix('.')?.parse().ok()?;
                Some((index, v.clone()))
            })
            .collect();
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// Whether the request carried `DryRun=true`.
    #[must_use]
    pub fn dry_run(&self) -> bool {
        self.param("DryRun") == Some("true")
    }

    /// The operation, with ` (DryRun)` appended when it carried `DryRun=true`.
    #[must_use]
    pub fn label(&self) -> String {
        if self.dry_run() {
            format!("{} (DryRun)", self.operation)
        } else {
            self.operation.clone()
        }
    }
}

/// A point in a [`RequestLog`] and in the call log it is checked against; see [`RequestLog::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    sent: usize,
    calls: usize,
}

/// Records the requests its interceptors see (one [`RequestLog::interceptor`] per client), in
/// order, once per operation whatever the retries. Cheap to clone; clones share the record.
#[derive(Debug, Clone)]
pub struct RequestLog {
    calls: CallLog,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<SentRequest>,
    /// How many of `sent` [`RequestLog::take`] has returned.
    taken: usize,
    fault: Option<Fault>,
}

/// Requests to fail: `operation` with parameter `param` equal to `value`.
#[derive(Debug)]
struct Fault {
    operation: String,
    param: String,
    value: String,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RequestLog {
    /// A request log for clients that carry `calls` (their call log), checked against it.
    #[must_use]
    pub fn new(calls: &CallLog) -> RequestLog {
        RequestLog {
            calls: calls.clone(),
            state: Arc::default(),
        }
    }

    /// The interceptor to add to a client of `service` (`EC2`, `IAM`: the label the call log
    /// gives that service), after the call log's.
    #[must_use]
    pub fn interceptor(&self, service: &'static str) -> RequestLogInterceptor {
        RequestLogInterceptor {
            service,
            log: self.clone(),
        }
    }

    /// Where both this request log and its call log are now.
    #[must_use]
    pub fn mark(&self) -> Mark {
        Mark {
            sent: lock(&self.state).sent.len(),
            calls: self.calls.count(),
        }
    }

    /// Every request sent since `mark`, in order.
    #[must_use]
    pub fn since(&self, mark: Mark) -> Vec<SentRequest> {
        lock(&self.state)
            .sent
            .get(mark.sent..)
            .map(<[SentRequest]>::to_vec)
            .unwrap_or_default()
    }

    /// The operations sent since `mark`, in order, as [`SentRequest::label`]s
    /// (`CreateSnapshots (DryRun)`).
    ///
    /// # Panics
    /// If the call log did not record exactly the same operations over the same span (every
    /// operation counted in `awsCalls` was sent, once, and nothing else was).
    #[must_use]
    pub fn ops_since(&self, mark: Mark) -> Vec<String> {
        let sent = self.since(mark);
        let labels: Vec<String> = sent.iter().map(SentRequest::label).collect();
        let mut recorded: Vec<String> = sent
            .iter()
            .map(|r| format!("{}:{}", r.service, r.operation))
            .collect();
        let mut logged = self.calls.since(mark.calls);
        recorded.sort();
        logged.sort();
        assert_eq!(
            recorded, logged,
            "call log and request log disagree: {labels:?}"
        );
        labels
    }

    /// Every request sent since the previous `take` (or since the start), in order; calling it
    /// and dropping the result forgets what was sent so far.
    pub fn take(&self) -> Vec<SentRequest> {
        let mut state = lock(&self.state);
        let new = state.sent.get(state.taken..).map(<[SentRequest]>::to_vec);
        state.taken = state.sent.len();
        new.unwrap_or_default()
    }

    /// From now on every attempt of `operation` whose parameter `param` is `value` fails before
    /// it is sent, as a dropped connection would (the SDK reports a dispatch failure), until
    /// [`RequestLog::stop_failing`]. The failed operation is still recorded (it was serialized).
    pub fn fail_sending(&self, operation: &str, param: &str, value: &str) {
        lock(&self.state).fault = Some(Fault {
            operation: operation.to_owned(),
            param: param.to_owned(),
            value: value.to_owned(),
        });
    }

    /// Stops what [`RequestLog::fail_sending`] started.
    pub fn stop_failing(&self) {
        lock(&self.state).fault = None;
    }
}

/// A [`RequestLog`]'s interceptor on one client; see [`RequestLog::interceptor`].
#[derive(Debug, Clone)]
pub struct RequestLogInterceptor {
    service: &'static str,
    log: RequestLog,
}

impl RequestLogInterceptor {
    fn request(&self, context: &BeforeTransmitInterceptorContextRef<'_>) -> SentRequest {
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        SentRequest::from_body(self.service, &body)
    }
}

impl Intercept for RequestLogInterceptor {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    /// Once per operation (before the retry loop): the serialized body.
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = self.request(context);
        lock(&self.log.state).sent.push(request);
        Ok(())
    }

    /// Every attempt: fail the ones [`RequestLog::fail_sending`] names.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let state = lock(&self.log.state);
        let Some(fault) = &state.fault else {
            return Ok(());
        };
        let request = self.request(context);
        if request.operation == fault.operation
            && request.param(&fault.param) == Some(fault.value.as_str())
        {
            return Err(format!(
                "injected: connection to {} lost while sending {} {}={}",
                self.service, fault.operation, fault.param, fault.value
            )
            .into());
        }
        Ok(())
    }
}
