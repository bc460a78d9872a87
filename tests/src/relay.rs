//! A relay in front of the emulator that lets one request through at a time, for race tests.
//!
//! DynamoDB and Step Functions execute every request atomically; moto 5.2.5 does not. It serves
//! requests on threads without a lock, so two conditional puts can both pass their condition;
//! a cancelled `TransactWriteItems` restores a deep copy of each whole table taken when it
//! started, erasing the writes other requests made and were acknowledged for meanwhile (in one
//! direct run, 14 of 20 acknowledged repeats survived; a lost opening write can even let a
//! second `New` through); and two `StartExecution`s with one name can both pass its existence
//! check. A race test run straight against moto would test moto's races, not the suite's.
//!
//! [`one_at_a_time`] restores per-request atomicity and nothing else: concurrent callers still
//! interleave at every request boundary (read, then write conditionally), which is where the
//! races the tests are after are. Point the SDK at its URL instead of the emulator's
//! (`sdk_config().into_builder().endpoint_url(relay)`), or take [`serialized_clients`].

// A test fixture: a relay that cannot listen, or loses a connection, must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use ir_aws::Clients;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::actions::clients_for;
use crate::localcloud::LocalCloud;

/// Starts a relay to `upstream` (the emulator's URL, `http://host:port`) on a free local port,
/// on the current runtime; returns its URL. Requests from every connection go through one at a
/// time, each on a fresh upstream connection (`Connection: close`), and their responses are
/// passed back unchanged.
///
/// # Panics
/// If no local port can be bound; a relayed connection that fails (a chunked request, the
/// upstream unreachable) panics its relay task, which closes the client's connection.
pub async fn one_at_a_time(upstream: &str) -> String {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Mutex::new(()));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, gate) = (upstream.clone(), gate.clone());
            tokio::spawn(async move {
                if let Err(e) = relay(client, upstream, Some(gate), |_, _| {}).await {
                    panic!("relay: {e}");
                }
            });
        }
    });
    format!("http://{addr}")
}

/// [`clients_for`] the emulator `cloud` through a fresh [`one_at_a_time`] relay: every request
/// of these clients waits for the one before it.
pub async fn serialized_clients(cloud: &LocalCloud) -> Clients {
    let relay = one_at_a_time(cloud.endpoint_url()).await;
    let sdk = cloud
        .sdk_config()
        .into_builder()
        .endpoint_url(relay)
        .build();
    clients_for(&sdk)
}

/// Relays the requests of one client connection, each on a fresh upstream connection and, with
/// a `gate`, while holding it; `observe` sees each request and its response before the client
/// gets the response.
async fn relay(
    client: TcpStream,
    upstream: String,
    gate: Option<Arc<Mutex<()>>>,
    observe: impl Fn(&[u8], &[u8]),
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    while let Some(request) = read_request(&mut client).await? {
        let response = {
            let _one = match &gate {
                Some(g) => Some(g.lock().await),
                None => None,
            };
            let mut up = TcpStream::connect(&upstream).await?;
            up.write_all(&request).await?;
            let mut response = Vec::new();
            up.read_to_end(&mut response).await?;
            response
        };
        observe(&request, &response);
        client.get_mut().write_all(&response).await?;
    }
    Ok(())
}

/// One HTTP/1.1 request from the client (`Connection: close` forced), `None` at end of stream.
async fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b"\r\n" {
            break;
        }
        let lower = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().map_err(std::io::Error::other)?;
        }
        if lower.starts_with("transfer-encoding:") {
            return Err(std::io::Error::other("chunked requests are not relayed"));
        }
        if !lower.starts_with("connection:") {
            message.extend_from_slice(&line);
        }
    }
    message.extend_from_slice(b"Connection: close\r\n\r\n");
    let start = message.len();
    message.resize(start + content_length, 0);
    r.read_exact(&mut message[start..]).await?;
    Ok(Some(message))
}

/// The invocation a function process is working on, as its runtime relay saw it: the request
/// id of the last `/invocation/next` answer it took, until it posts that invocation's response
/// or error.
pub type InFlight = Arc<std::sync::Mutex<Option<String>>>;

/// A relay between one function process and cargo lambda's runtime API (`upstream`,
/// `http://host:port`), passing everything through unchanged and noting the invocation in
/// flight, so that a harness that kills the process can report that invocation as the Lambda
/// service does when a runtime exits mid-invocation ([`report_exit`]). Returns the relay's URL
/// and the invocation in flight.
///
/// # Errors
/// No local port could be bound.
pub async fn runtime_relay(upstream: &str) -> std::io::Result<(String, InFlight)> {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let in_flight: InFlight = Arc::default();
    let noted = Arc::clone(&in_flight);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, noted) = (upstream.clone(), Arc::clone(&noted));
            // A killed process drops its connection mid-request: that ends this task only.
            tokio::spawn(async move {
                let note =
                    |request: &[u8], response: &[u8]| note_in_flight(&noted, request, response);
                let _ = relay(client, upstream, None, note).await;
            });
        }
    });
    Ok((format!("http://{addr}"), in_flight))
}

/// The invocation a `/invocation/next` answer hands out is in flight until the process posts
/// its `/response` or `/error`.
fn note_in_flight(in_flight: &InFlight, request: &[u8], response: &[u8]) {
    let line =
        String::from_utf8_lossy(request.split(|b| *b == b'\n').next().unwrap_or(&[])).into_owned();
    let now = if line.contains("/invocation/next") {
        let text = String::from_utf8_lossy(response);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        crate::fault::header(head, "lambda-runtime-aws-request-id").map(str::to_owned)
    } else if line.contains("/response ") || line.contains("/error ") {
        None
    } else {
        return;
    };
    if let Ok(mut f) = in_flight.lock() {
        *f = now;
    }
}

/// Reports invocation `request_id` of `function` failed with `Runtime.ExitError` on cargo
/// lambda's runtime API (`upstream`, `http://host:port`), as the Lambda service reports an
/// invocation whose runtime process died: the invoker gets a function error, not a hang.
///
/// # Errors
/// The runtime API could not be reached.
pub async fn report_exit(upstream: &str, function: &str, request_id: &str) -> std::io::Result<()> {
    let upstream = upstream.trim_start_matches("http://");
    let body = format!(
        r#"{{"errorType":"Runtime.ExitError","errorMessage":"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}}"#
    );
    let request = format!(
        "POST /.rt/{function}/2018-06-01/runtime/invocation/{request_id}/error HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nLambda-Runtime-Function-Error-Type: Runtime.ExitError\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    Ok(())
}
