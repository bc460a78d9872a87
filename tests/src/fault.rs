//! A fault-injecting HTTP proxy between one function and the emulator: every request is
//! forwarded as it is, except the ones a [`FaultRule`] names, which get the fault instead (or,
//! for [`Fault::LostAfterApply`], [`Fault::Slow`] and [`Fault::KilledAfterApply`], are
//! forwarded and then lose their answer).
//!
//! The operation of a request is read the way AWS routes it: `X-Amz-Target` (JSON protocols:
//! `DynamoDB_20120810.PutItem` → `PutItem`), else the query protocol's `Action=` form field
//! (EC2, IAM, STS: `ModifyNetworkInterfaceAttribute`), else, for S3's REST protocol, from the
//! method, the query's sub-resource and the copy-source header (`PUT` → `PutObject`, `PUT
//! ?retention` → `PutObjectRetention`). A request that changes something (every operation but
//! `Describe*`, `Get*`, `List*`, `Head*`, `Query`, `Scan`, `BatchGetItem`) is a mutation; a rule
//! can name the k-th mutation instead of an operation.
//!
//! The emulator closes every connection after one answer, so the proxy handles one request per
//! connection and says `Connection: close` on what it makes up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::offline::OfflineError;

type Result<T> = std::result::Result<T, OfflineError>;

fn ctx<T, E: std::fmt::Debug>(
    r: std::result::Result<T, E>,
    what: impl std::fmt::Display,
) -> Result<T> {
    r.map_err(|e| OfflineError(format!("{what}: {e:?}")))
}

/// What a request named by a rule gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error (EC2 `RequestLimitExceeded` 503, IAM `Throttling` 400,
    /// JSON `ThrottlingException` 400).
    Throttle,
    /// `500 InternalError`.
    ServerError,
    /// The connection reset before any answer (nothing reached the emulator).
    Reset,
    /// The request is forwarded and applied by the emulator, then the connection is reset
    /// instead of answering: a network that lost the answer.
    LostAfterApply,
    /// The request is forwarded and applied, and the answer held back until the caller gives
    /// up (its SDK attempt timeout): an answer slower than the SDK waits.
    Slow,
    /// The function's process is killed when it sends this request, before the request
    /// reaches the emulator (the runtime then sees its invocation never answered).
    Killed,
    /// The request is forwarded and applied, then the function's process is killed before it
    /// reads the answer.
    KilledAfterApply,
}

impl Fault {
    /// Every fault an operation's rows get, in the order the matrix prints them (the kills are
    /// rows of their own: after k of n mutations).
    pub const ALL: [Fault; 5] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Reset,
        Fault::LostAfterApply,
        Fault::Slow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "500",
            Fault::Reset => "reset",
            Fault::LostAfterApply => "lost-after-apply",
            Fault::Slow => "slow",
            Fault::Killed => "killed",
            Fault::KilledAfterApply => "killed-after-apply",
        }
    }

    fn kills(self) -> bool {
        matches!(self, Fault::Killed | Fault::KilledAfterApply)
    }
}

/// Which requests a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every request of this operation.
    Operation(String),
    /// The function's k-th mutation (1 first), whatever its operation.
    Mutation(u32),
}

/// Which requests get a fault: those `target` names, the first `times` of them (`None`: every
/// one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub target: Target,
    pub fault: Fault,
    pub times: Option<u32>,
}

impl FaultRule {
    /// `fault` on every call of `operation` (`times: None`) or the first `times`.
    pub fn at(operation: &str, fault: Fault, times: Option<u32>) -> FaultRule {
        FaultRule {
            target: Target::Operation(operation.to_owned()),
            fault,
            times,
        }
    }
}

/// Kills the process behind the proxy (and starts a new one, as Lambda would for the next
/// invocation).
pub type KillHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    /// Every operation forwarded or faulted, in order.
    seen: Vec<String>,
    /// How many mutations were seen.
    mutations: u32,
    /// How many faults were injected.
    injected: u32,
    kill: Option<KillHook>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("seen", &self.seen)
            .field("mutations", &self.mutations)
            .field("injected", &self.injected)
            .field("kill", &self.kill.is_some())
            .finish()
    }
}

/// The running proxy. Dropping it stops accepting.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free local port, forwarding to `upstream` (`http://host:port`).
    ///
    /// # Errors
    /// The upstream is not `http://host:port`, or no port could be bound.
    pub async fn start(upstream: &str, rule: Option<FaultRule>) -> Result<FaultProxy> {
        let upstream: SocketAddr = ctx(
            upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse(),
            format!("the emulator's address {upstream}"),
        )?;
        let listener = ctx(
            TcpListener::bind("127.0.0.1:0").await,
            "binding the fault proxy",
        )?;
        let endpoint = format!(
            "http://{}",
            ctx(listener.local_addr(), "the fault proxy's address")?
        );
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, rule) = (Arc::clone(&shared), rule.clone());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, rule.as_ref(), &state).await;
                });
            }
        });
        Ok(FaultProxy {
            endpoint,
            state,
            task,
        })
    }

    /// Where the functions it stands in front of send their AWS calls.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every operation seen so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u32 {
        self.state.lock().map(|s| s.injected).unwrap_or_default()
    }

    /// What [`Fault::Killed`] and [`Fault::KilledAfterApply`] call.
    pub fn set_kill_hook(&self, hook: KillHook) {
        if let Ok(mut s) = self.state.lock() {
            s.kill = Some(hook);
        }
    }
}

/// What [`operation`] appends to the operation of an EC2 request with `DryRun=true`.
pub const DRY_RUN: &str = "(DryRun)";

/// Whether `operation` (as [`operation`] names it) changes something.
pub fn is_mutation(operation: &str) -> bool {
    const READS: [&str; 4] = ["Describe", "Get", "List", "Head"];
    !(READS.iter().any(|p| operation.starts_with(p))
        || operation.ends_with(DRY_RUN)
        || matches!(operation, "Query" | "Scan" | "BatchGetItem"))
}

/// One request: read, then faulted or forwarded.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: Option<&FaultRule>,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let request = read_request(&mut client).await?;
    let operation = operation(&request);
    let (fault, kill) = {
        let mut s = state
            .lock()
            .map_err(|_| std::io::Error::other("fault proxy state poisoned"))?;
        s.seen.push(operation.clone());
        if is_mutation(&operation) {
            s.mutations += 1;
        }
        let named = |r: &&FaultRule| match &r.target {
            Target::Operation(op) => *op == operation,
            Target::Mutation(k) => is_mutation(&operation) && s.mutations == *k,
        };
        let hit = rule.filter(|r| named(r) && r.times.is_none_or(|t| s.injected < t));
        if hit.is_some() {
            s.injected += 1;
        }
        (hit.map(|r| r.fault), s.kill.clone())
    };
    let kill_now = || {
        if let Some(k) = &kill {
            k();
        }
    };
    match fault {
        None => forward(client, upstream, &request).await,
        Some(Fault::Reset) => reset(client),
        Some(Fault::Killed) => {
            kill_now();
            reset(client)
        }
        Some(f @ (Fault::LostAfterApply | Fault::KilledAfterApply | Fault::Slow)) => {
            let mut server = TcpStream::connect(upstream).await?;
            server.write_all(&request).await?;
            let mut answer = Vec::new();
            server.read_to_end(&mut answer).await?;
            if f.kills() {
                kill_now();
            }
            if f == Fault::Slow {
                // Held until the caller hangs up: no answer is ever late by a set time, it
                // is never sent at all, and the SDK's attempt timeout decides.
                let mut rest = [0u8; 1024];
                while client.read(&mut rest).await.is_ok_and(|n| n > 0) {}
            }
            reset(client)
        }
        Some(f @ (Fault::Throttle | Fault::ServerError)) => {
            let reply = error_reply(&request, &operation, f);
            client.write_all(reply.as_bytes()).await?;
            client.shutdown().await
        }
    }
}

/// Closes the connection with a TCP reset (linger 0), answering nothing.
fn reset(client: TcpStream) -> std::io::Result<()> {
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}

/// The request head and its `Content-Length` body, as bytes.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the client closed before a whole request",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// The value of header `name` (any case) in an HTTP message's head.
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The operation a request calls (see the module docs).
pub fn operation(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if let Some(target) = header(head, "x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        // A dry run (EC2's permission check) changes nothing: a row of its own, no mutation.
        return if body.split('&').any(|kv| kv == "DryRun=true") {
            format!("{action}{DRY_RUN}")
        } else {
            action.to_owned()
        };
    }
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("/"),
    );
    s3_operation(method, target, header(head, "x-amz-copy-source").is_some())
        .unwrap_or_else(|| line.to_owned())
}

/// An S3 REST request's operation, from its method, path and query (path-style addressing:
/// `/bucket` or `/bucket/key`).
fn s3_operation(method: &str, target: &str, copy: bool) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let has = |sub: &str| {
        query
            .split('&')
            .any(|kv| kv.split('=').next().is_some_and(|k| k == sub))
    };
    let object = path.trim_start_matches('/').contains('/');
    let sub = [
        ("retention", "ObjectRetention"),
        ("legal-hold", "ObjectLegalHold"),
        ("tagging", "ObjectTagging"),
        ("object-lock", "ObjectLockConfiguration"),
        ("versioning", "BucketVersioning"),
        ("acl", "Acl"),
    ]
    .into_iter()
    .find(|(q, _)| has(q))
    .map(|(_, name)| name);
    Some(match (method, sub) {
        ("GET", Some(name)) => format!("Get{name}"),
        ("PUT", Some(name)) => format!("Put{name}"),
        ("GET", None) if has("list-type") || has("versions") || !object => {
            if has("versions") {
                "ListObjectVersions".to_owned()
            } else {
                "ListObjectsV2".to_owned()
            }
        }
        ("GET", None) => "GetObject".to_owned(),
        ("HEAD", None) if object => "HeadObject".to_owned(),
        ("HEAD", None) => "HeadBucket".to_owned(),
        ("PUT", None) if has("uploadId") => "UploadPart".to_owned(),
        ("PUT", None) if copy => "CopyObject".to_owned(),
        ("PUT", None) if object => "PutObject".to_owned(),
        ("PUT", None) => "CreateBucket".to_owned(),
        ("POST", None) if has("uploads") => "CreateMultipartUpload".to_owned(),
        ("POST", None) if has("uploadId") => "CompleteMultipartUpload".to_owned(),
        ("POST", None) if has("delete") => "DeleteObjects".to_owned(),
        ("DELETE", _) => "DeleteObject".to_owned(),
        _ => return None,
    })
}

/// The service's own error answer for `fault`, in its protocol.
fn error_reply(request: &[u8], operation: &str, fault: Fault) -> String {
    let text = String::from_utf8_lossy(request);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let json = header(head, "x-amz-target").is_some();
    let iam = header(head, "host").is_some_and(|h| h.contains("iam"))
        || header(head, "authorization").is_some_and(|a| a.contains("/iam/aws4_request"));
    let (status, code, message) = match (fault, iam) {
        (Fault::Throttle, true) => (400, "Throttling", "Rate exceeded"),
        (Fault::Throttle, false) if json => (400, "ThrottlingException", "Rate exceeded"),
        (Fault::Throttle, false) => (503, "RequestLimitExceeded", "Request limit exceeded."),
        _ => (500, "InternalError", "An internal error has occurred"),
    };
    let message = format!("{message} (injected into {operation})");
    let (content_type, body) = if json {
        (
            "application/x-amz-json-1.0",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else if iam {
        (
            "text/xml",
            // IAM's answer also carries `<RequestId>`; left out here because the emulator
            // rewrites everything between the first `<RequestId>` and the last `</RequestId>` of
            // every response it sends (a greedy regex in moto's responses.py), DynamoDB's JSON
            // included: two audit records quoting such an answer would come back merged. The
            // request id is in the `x-amzn-requestid` header.
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
            ),
        )
    } else {
        (
            "text/xml",
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            ),
        )
    };
    format!(
        "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nx-amzn-requestid: fault-proxy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The request sent upstream as it came, and the answer back as it comes.
async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    request: &[u8],
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(request).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
