//! A fake Lambda Invoke API for the emulator's Step Functions engine to call: canned answers per
//! function, every request recorded.
//!
//! [`LocalCloudBuilder::lambda_endpoint`](crate::LocalCloudBuilder::lambda_endpoint) routes the
//! engine's Lambda tasks to a URL; a [`FakeLambda`] there answers
//! `POST /2015-03-31/functions/<name>/invocations` with the [`Reply`]s a test canned for
//! `<name>` (in order, the last one repeating) or else its [`Fallback`], and records every
//! request it gets, whatever its path (e.g. an SNS topic's HTTP deliveries to a path of its own).
//! Tests wait for what they expect with [`FakeLambda::wait_calls`] and
//! [`FakeLambda::wait_posted`], never for a fixed time.
//!
//! [`LambdaCloud`] is a fake and a private emulator routed to it, started once for a test module:
//! a module's `fn env() -> &'static LambdaCloud` keeps it in a `static OnceLock`, initialized with
//! [`LambdaCloud::start`].

// A test fixture: a fake that cannot start, or a request that does not come in time, must stop
// the test loudly.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::localcloud::LocalCloud;

/// How long [`FakeLambda::wait_calls`] and [`FakeLambda::wait_posted`] wait.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The path of the Lambda Invoke API's `/invocations` prefix.
const FUNCTIONS: &str = "/2015-03-31/functions/";

/// A canned answer of a fake function.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The function's result.
    Ok(Value),
    /// A function error, as the Lambda runtime reports one (`X-Amz-Function-Error`): its type
    /// and message.
    Err(&'static str, String),
}

/// What a [`FakeLambda`] answers a request nothing was canned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The function error `Unconfigured` naming the function: a test cans every answer.
    Unconfigured,
    /// `{}`: for functions whose result is not used, and for requests that are no invocations.
    Empty,
    /// `{"echo": <the request's JSON payload>}`, as a stand-in for `cargo lambda watch`.
    Echo,
}

impl Fallback {
    fn reply(self, function: &str, payload: &Value) -> Reply {
        match self {
            Self::Unconfigured => {
                Reply::Err("Unconfigured", format!("no canned reply for {function}"))
            }
            Self::Empty => Reply::Ok(json!({})),
            Self::Echo => Reply::Ok(json!({ "echo": payload })),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Replies per function, in order; the last one repeats.
    replies: HashMap<String, Vec<Reply>>,
    /// Every request: (path, JSON body, `null` if it is none).
    requests: Vec<(String, Value)>,
}

/// The fake Lambda Invoke API; clones share its answers and records.
#[derive(Debug, Clone)]
pub struct FakeLambda {
    url: String,
    fallback: Fallback,
    state: Arc<Mutex<State>>,
    requested: Arc<Notify>,
}

impl FakeLambda {
    /// Serves a fake on a free local port, on the current runtime (it stops with it).
    ///
    /// # Errors
    /// If no local port can be bound.
    pub async fn start(fallback: Fallback) -> std::io::Result<FakeLambda> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let lambda = FakeLambda {
            url: format!("http://{}", listener.local_addr()?),
            fallback,
            state: Arc::default(),
            requested: Arc::default(),
        };
        let serving = lambda.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let lambda = serving.clone();
                tokio::spawn(async move {
                    let _ = lambda.answer(stream).await;
                });
            }
        });
        Ok(lambda)
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path the engine invokes function `name` at.
    #[must_use]
    pub fn function_path(name: &str) -> String {
        format!("{FUNCTIONS}{name}/invocations")
    }

    /// Cans `function`'s answers: one per invocation, in order, the last one repeating.
    pub fn reply(&self, function: &str, replies: Vec<Reply>) {
        self.state().replies.insert(function.to_owned(), replies);
    }

    /// Every request so far, in order: (path, JSON body).
    #[must_use]
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.state().requests.clone()
    }

    /// The payloads `function` was invoked with so far, in order.
    #[must_use]
    pub fn calls(&self, function: &str) -> Vec<Value> {
        self.bodies(|path| function_of(path) == function)
    }

    /// The JSON bodies posted to `path` so far, in order.
    #[must_use]
    pub fn posted(&self, path: &str) -> Vec<Value> {
        self.bodies(|p| p == path)
    }

    /// Waits until `function` was invoked at least `n` times; its payloads.
    ///
    /// # Panics
    /// If it was not within [`DEADLINE`].
    pub async fn wait_calls(&self, function: &str, n: usize) -> Vec<Value> {
        self.wait(function, n, |path| function_of(path) == function)
            .await
    }

    /// Waits until `path` got at least `n` requests; their bodies.
    ///
    /// # Panics
    /// If it did not within [`DEADLINE`].
    pub async fn wait_posted(&self, path: &str, n: usize) -> Vec<Value> {
        self.wait(path, n, |p| p == path).await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bodies(&self, path_matches: impl Fn(&str) -> bool) -> Vec<Value> {
        self.state()
            .requests
            .iter()
            .filter(|(path, _)| path_matches(path))
            .map(|(_, body)| body.clone())
            .collect()
    }

    async fn wait(&self, what: &str, n: usize, path_matches: impl Fn(&str) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let requested = self.requested.notified();
            let got = self.bodies(&path_matches);
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: {} request(s), expected {n}, within {DEADLINE:?}",
                got.len()
            );
            let _ = tokio::time::timeout(left, requested).await;
        }
    }

    /// Records a request; the answer canned for its function, or the fallback.
    fn record(&self, path: String, payload: Value) -> Reply {
        let mut state = self.state();
        let function = function_of(&path);
        let reply = match state.replies.get_mut(function) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if !list.is_empty() => list[0].clone(),
            _ => self.fallback.reply(function, &payload),
        };
        state.requests.push((path, payload));
        drop(state);
        self.requested.notify_waiters();
        reply
    }

    /// Answers the one request of a connection (`Connection: close`).
    async fn answer(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await?;
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).await?;
        let payload = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (extra, reply) = match self.record(path, payload) {
            Reply::Ok(v) => (String::new(), v.to_string()),
            Reply::Err(error_type, message) => (
                "X-Amz-Function-Error: Unhandled\r\n".to_owned(),
                json!({ "errorType": error_type, "errorMessage": message }).to_string(),
            ),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-Amz-Executed-Version: $LATEST\r\n{extra}Connection: close\r\n\r\n{reply}",
            reply.len()
        );
        let mut stream = reader.into_inner();
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// The function a request's path invokes (`""` for any other path).
fn function_of(path: &str) -> &str {
    path.strip_prefix(FUNCTIONS)
        .and_then(|p| p.split('/').next())
        .unwrap_or_default()
}

/// A private emulator whose Step Functions engine invokes [`lambda`](Self::lambda).
#[derive(Debug)]
pub struct LambdaCloud {
    pub cloud: LocalCloud,
    pub lambda: FakeLambda,
}

impl LambdaCloud {
    /// Starts a [`FakeLambda`] on a thread and runtime of its own, so that it outlives the
    /// runtime of each test that uses it, then the emulator routed to it. Blocks (on threads of
    /// its own, so it may be called from a runtime): meant for a test file's `static OnceLock`
    /// (see the [module docs](self)).
    ///
    /// # Panics
    /// If the fake or the emulator cannot start (with the harness error, which says what to run
    /// when the venv or moto is missing).
    #[must_use]
    pub fn start(fallback: Fallback) -> LambdaCloud {
        std::thread::spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    tx.send(FakeLambda::start(fallback).await.unwrap()).unwrap();
                    std::future::pending::<()>().await;
                });
            });
            let lambda = rx.recv().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let cloud = rt
                .block_on(LocalCloud::builder().lambda_endpoint(lambda.url()).start())
                .unwrap_or_else(|e| panic!("{e}"));
            LambdaCloud { cloud, lambda }
        })
        .join()
        .unwrap_or_else(|_| panic!("the local cloud did not start (see the panic above)"))
    }
}
