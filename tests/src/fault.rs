//! A fault-injecting HTTP proxy between some functions and the emulator: every request is
//! forwarded as it is, except the ones a [`FaultRule`] names, which get the fault instead (or,
//! for [`Fault::LostAfterApply`], are forwarded and then lose their answer).
//!
//! The operation of a request is read the way AWS routes it: `X-Amz-Target` (JSON protocols:
//! `DynamoDB_20120810.PutItem` → `PutItem`), else the query protocol's `Action=` form field
//! (EC2, IAM, STS: `ModifyNetworkInterfaceAttribute`), else the method and path (S3, Lambda).
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
    /// instead of answering: as a process that died right after its call landed sees it.
    LostAfterApply,
}

impl Fault {
    /// Every fault, in the order the matrix prints them.
    pub const ALL: [Fault; 4] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Reset,
        Fault::LostAfterApply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "500",
            Fault::Reset => "reset",
            Fault::LostAfterApply => "lost-after-apply",
        }
    }
}

/// Which requests get a fault: those of `operation`, the first `times` of them (`None`: every
/// one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub operation: String,
    pub fault: Fault,
    pub times: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    /// Every operation forwarded or faulted, in order.
    seen: Vec<String>,
    /// How many faults were injected.
    injected: u32,
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
    let fault = {
        let mut s = state
            .lock()
            .map_err(|_| std::io::Error::other("fault proxy state poisoned"))?;
        s.seen.push(operation.clone());
        let hit =
            rule.filter(|r| r.operation == operation && r.times.is_none_or(|t| s.injected < t));
        if hit.is_some() {
            s.injected += 1;
        }
        hit.map(|r| r.fault)
    };
    match fault {
        None => forward(client, upstream, &request).await,
        Some(Fault::Reset) => reset(client),
        Some(Fault::LostAfterApply) => {
            let mut server = TcpStream::connect(upstream).await?;
            server.write_all(&request).await?;
            let mut answer = Vec::new();
            server.read_to_end(&mut answer).await?;
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

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The operation a request calls (see the module docs).
fn operation(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if let Some(target) = header(head, "x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_owned();
    }
    head.lines().next().unwrap_or_default().to_owned()
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
