//! The local cloud: moto in server mode, started from the test process, reached with the real
//! `aws-sdk-rust` clients over HTTP.
//!
//! # Lifecycle
//!
//! [`LocalCloud`] spawns `<repo>/.venv/bin/python scripts/localcloud/moto_server.py --port 0`
//! (the venv comes from `scripts/bootstrap-python`) with stdin, stdout and stderr piped, waits
//! for the launcher's single `READY http://127.0.0.1:<port>` line (deadline
//! [`DEFAULT_STARTUP_TIMEOUT`], no sleeps), then checks that `<endpoint>/moto-api/` answers
//! 200. Step Functions state-machine execution is always on (the launcher enables and verifies
//! it). Dropping a `LocalCloud` kills the child and waits for it (no zombie). The launcher also
//! exits when its stdin reaches EOF, so the emulator never outlives the test process: the shared
//! instance lives in a `static` and is never dropped, so when the test binary exits (or is
//! SIGKILLed) the pipe closes, the launcher exits by itself, and init reaps it.
//!
//! # One shared server per test binary, resources namespaced per test
//!
//! Starting the emulator costs a Python interpreter plus the moto import: 1.2-1.6 s from spawn
//! to a successful `/moto-api/` answer on the 2-core dev machine (about 2 s while a cargo build
//! runs alongside), and the first call to each AWS service then pays that service's lazy import
//! in moto. The smoke tests themselves take milliseconds each, so a server per test would
//! dominate run time and, with tests running in parallel threads on 2 cores, contend for CPU.
//! So:
//!
//! * [`LocalCloud::shared`] starts ONE emulator per test binary (lazily, on first use, behind a
//!   `tokio::sync::OnceCell`) and hands out `&'static LocalCloud`. Tests using it stay isolated
//!   by naming every resource they create with [`unique_name`] (tables, buckets, state
//!   machines, security-group names, ...) and by only looking up resources by the ids/names
//!   they created. They must not call [`LocalCloud::reset`] (it is refused on the shared
//!   instance) and must not list-and-assert account-wide state ("exactly one VPC").
//! * [`LocalCloud::start`] / [`LocalCloud::builder`] start a PRIVATE emulator owned by the
//!   test, for tests that need a clean account, [`LocalCloud::reset`], or launcher options such
//!   as [`LocalCloudBuilder::lambda_endpoint`]. It is stopped when dropped.
//!
//! # Failure is loud
//!
//! Nothing here skips a test. If the venv or moto is missing, [`HarnessError`] says to run
//! `scripts/bootstrap-python`; any other start failure carries the launcher's stderr. Tests
//! should propagate the error (or panic with it).
//!
//! Set `LOCALCLOUD_VERBOSE=1` to have moto log every request and to echo the launcher's stderr
//! (prefixed `[localcloud]`) to the test process's stderr; [`LocalCloud::stderr_tail`] gives the
//! recent lines either way.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};

/// Region every client of the local cloud uses.
pub const REGION: &str = "us-east-1";
/// moto's default account id: the account in every ARN the emulator returns.
pub const ACCOUNT_ID: &str = "123456789012";
/// Static test credentials (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing";
/// Static test credentials (moto accepts any).
pub const SECRET_ACCESS_KEY: &str = "testing";
/// What to run when the Python side is missing, relative to the repository root.
pub const BOOTSTRAP_COMMAND: &str = "scripts/bootstrap-python";
/// Default deadline for the emulator to print READY and answer `/moto-api/`.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

const LAUNCHER: &str = "scripts/localcloud/moto_server.py";
const VENV_PYTHON: &str = ".venv/bin/python";
const LOG_CAPACITY: usize = 500;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const VERBOSE_ENV: &str = "LOCALCLOUD_VERBOSE";

/// Why the local cloud could not be started or used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `<repo>/.venv/bin/python` does not exist.
    #[error(
        "local cloud: the project virtualenv is missing ({} not found). Run `{BOOTSTRAP_COMMAND}` \
         in {} and re-run the tests",
        .python.display(),
        .repo_root.display()
    )]
    VenvMissing {
        /// The interpreter that was looked for.
        python: PathBuf,
        /// The repository root.
        repo_root: PathBuf,
    },
    /// The launcher could not import moto (or its server extras) from the venv.
    #[error(
        "local cloud: moto[server] is not installed in the project virtualenv. Run \
         `{BOOTSTRAP_COMMAND}` in {} and re-run the tests. Launcher stderr:\n{stderr}",
        .repo_root.display()
    )]
    MotoMissing {
        /// The repository root.
        repo_root: PathBuf,
        /// The launcher's stderr.
        stderr: String,
    },
    /// The launcher script is not where the harness expects it.
    #[error("local cloud: launcher {} not found", .0.display())]
    LauncherMissing(PathBuf),
    /// The pinned moto no longer has the internals the launcher relies on (launcher status 3).
    #[error(
        "local cloud: the installed moto does not match what {LAUNCHER} expects (moto is pinned \
         in scripts/requirements.txt; re-run `{BOOTSTRAP_COMMAND}` or update the launcher). \
         Launcher stderr:\n{stderr}"
    )]
    MotoInternalsChanged {
        /// The launcher's stderr.
        stderr: String,
    },
    /// Spawning the launcher process failed.
    #[error("local cloud: cannot spawn {program}: {source}")]
    Spawn {
        /// The program that was spawned.
        program: String,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The launcher exited before it printed READY.
    #[error(
        "local cloud: the emulator exited before it was ready ({status}). Launcher stderr:\n{stderr}"
    )]
    Exited {
        /// Exit status as text.
        status: String,
        /// The launcher's stderr.
        stderr: String,
    },
    /// No READY line within the deadline.
    #[error(
        "local cloud: the emulator did not print READY within {timeout:?}. Launcher stderr:\n{stderr}"
    )]
    StartTimeout {
        /// The deadline that passed.
        timeout: Duration,
        /// The launcher's stderr so far.
        stderr: String,
    },
    /// The launcher printed something other than `READY http://127.0.0.1:<port>`.
    #[error("local cloud: malformed READY line from the launcher: {line:?}")]
    BadReadyLine {
        /// The line as read.
        line: String,
    },
    /// A request to the emulator's `/moto-api/` failed.
    #[error("local cloud: {method} {url} failed: {detail}")]
    Http {
        /// HTTP method.
        method: String,
        /// Full URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// `lambda_endpoint` was requested but the launcher did not confirm the routing hook.
    #[error(
        "local cloud: the launcher did not confirm Lambda routing to {url} (no `lambda routing -> \
         {url}` line). Launcher stderr:\n{stderr}"
    )]
    LambdaRoutingNotConfirmed {
        /// The requested Lambda endpoint.
        url: String,
        /// The launcher's stderr.
        stderr: String,
    },
    /// [`LocalCloud::reset`] was called on the shared instance.
    #[error(
        "local cloud: reset() is refused on the shared instance (it would wipe other tests' \
         resources); start a private one with LocalCloud::start()"
    )]
    ResetOnShared,
    /// Internal plumbing failed (reader thread, blocking task).
    #[error("local cloud: {0}")]
    Internal(String),
}

/// Options for a private emulator; see [`LocalCloud::builder`].
#[derive(Debug, Clone)]
pub struct LocalCloudBuilder {
    lambda_endpoint: Option<String>,
    startup_timeout: Duration,
    verbose: bool,
}

impl Default for LocalCloudBuilder {
    fn default() -> Self {
        let verbose = std::env::var(VERBOSE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        Self {
            lambda_endpoint: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            verbose,
        }
    }
}

impl LocalCloudBuilder {
    /// Route the Step Functions engine's Lambda invocations (`lambda:invoke` and
    /// `arn:aws:lambda:...` tasks) to this Lambda Invoke API endpoint, e.g. the address of
    /// `cargo lambda watch`. Start fails unless the launcher confirms the hook is installed.
    #[must_use]
    pub fn lambda_endpoint(mut self, url: impl Into<String>) -> Self {
        self.lambda_endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Deadline for READY plus the `/moto-api/` check (default [`DEFAULT_STARTUP_TIMEOUT`]).
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Log every request and echo the launcher's stderr (default: `LOCALCLOUD_VERBOSE`).
    #[must_use]
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Start a private emulator with these options.
    ///
    /// # Errors
    /// See [`HarnessError`]; a missing venv or moto says to run `scripts/bootstrap-python`.
    pub async fn start(self) -> Result<LocalCloud, HarnessError> {
        run_blocking(move || start_blocking(&self, false)).await
    }
}

/// A running local AWS emulator (moto server) and how to reach it.
pub struct LocalCloud {
    endpoint_url: String,
    addr: SocketAddr,
    lambda_routing: Option<String>,
    shared: bool,
    startup_time: Duration,
    log: Arc<LogBuf>,
    /// Owned child; dropping it kills and reaps the emulator.
    _process: Process,
}

impl std::fmt::Debug for LocalCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCloud")
            .field("endpoint_url", &self.endpoint_url)
            .field("lambda_routing", &self.lambda_routing)
            .field("shared", &self.shared)
            .field("startup_time", &self.startup_time)
            .field("pid", &self._process.child.id())
            .finish_non_exhaustive()
    }
}

static SHARED: tokio::sync::OnceCell<Result<LocalCloud, HarnessError>> =
    tokio::sync::OnceCell::const_new();

impl LocalCloud {
    /// Start a private emulator with default options (stopped when dropped).
    ///
    /// # Errors
    /// See [`HarnessError`]; a missing venv or moto says to run `scripts/bootstrap-python`.
    pub async fn start() -> Result<LocalCloud, HarnessError> {
        LocalCloudBuilder::default().start().await
    }

    /// Options for a private emulator.
    #[must_use]
    pub fn builder() -> LocalCloudBuilder {
        LocalCloudBuilder::default()
    }

    /// The emulator shared by all tests of this test binary, started on first use. A failed
    /// start is remembered: every later caller gets the same error, without a retry.
    ///
    /// # Errors
    /// See [`HarnessError`].
    pub async fn shared() -> Result<&'static LocalCloud, HarnessError> {
        let cell = SHARED
            .get_or_init(|| async {
                let opts = LocalCloudBuilder::default();
                run_blocking(move || start_blocking(&opts, true)).await
            })
            .await;
        cell.as_ref().map_err(Clone::clone)
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The Lambda endpoint the Step Functions engine invokes, when routing was requested and
    /// the launcher confirmed it (`lambda routing -> URL` on its stderr).
    #[must_use]
    pub fn lambda_routing(&self) -> Option<&str> {
        self.lambda_routing.as_deref()
    }

    /// Whether this is the [`LocalCloud::shared`] instance.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Wall time from spawn to READY plus a successful `/moto-api/` answer.
    #[must_use]
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Shared SDK config for this emulator: region [`REGION`], static test credentials,
    /// `endpoint_url` set, behavior version latest. Nothing is read from the environment or
    /// profile files. Build a fresh one per test/runtime (cheap) rather than caching clients
    /// across tests: a client's connection pool belongs to the tokio runtime it first ran on.
    ///
    /// For S3 use [`LocalCloud::s3_client`] (or set `force_path_style(true)` yourself):
    /// virtual-hosted addressing would put the bucket in the host name of `127.0.0.1`.
    #[must_use]
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "localcloud-static",
            )))
            .endpoint_url(self.endpoint_url.clone())
            .behavior_version(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build()
    }

    /// An S3 client for this emulator with path-style addressing.
    #[must_use]
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Wipe all emulator state (`POST /moto-api/reset`). Step Functions execution stays on.
    ///
    /// # Errors
    /// [`HarnessError::ResetOnShared`] on the shared instance; [`HarnessError::Http`] if the
    /// emulator does not answer `{"status": "ok"}`.
    pub async fn reset(&self) -> Result<(), HarnessError> {
        if self.shared {
            return Err(HarnessError::ResetOnShared);
        }
        let addr = self.addr;
        let url = format!("{}/moto-api/reset", self.endpoint_url);
        let (status, body) = run_blocking(move || {
            http_request(addr, "POST", "/moto-api/reset").map_err(|e| HarnessError::Http {
                method: "POST".into(),
                url,
                detail: e.to_string(),
            })
        })
        .await?;
        let body = String::from_utf8_lossy(&body);
        if status == 200 && body.contains("ok") {
            Ok(())
        } else {
            Err(HarnessError::Http {
                method: "POST".into(),
                url: format!("{}/moto-api/reset", self.endpoint_url),
                detail: format!("status {status}, body {body:?}"),
            })
        }
    }

    /// The launcher's most recent stderr lines (at most 500), for diagnostics.
    #[must_use]
    pub fn stderr_tail(&self) -> String {
        self.log.tail()
    }
}

/// A name unique within this test process, for namespacing resources on the shared emulator:
/// `<prefix>-<pid>-<n>`, lowercased, characters outside `[a-z0-9-]` replaced by `-` (valid as
/// an S3 bucket, DynamoDB table, state machine or security group name if `prefix` is short).
#[must_use]
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The repository root (the parent of this crate's directory).
#[must_use]
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

// ---------------------------------------------------------------------------------------------

/// The launcher child. Dropping it closes its stdin, kills it and reaps it.
#[derive(Debug)]
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Errors mean it already exited; wait() still reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bounded log of the launcher's stderr, with waiting for a line.
#[derive(Debug, Default)]
struct LogBuf {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct LogState {
    lines: VecDeque<String>,
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogBuf {
    fn push(&self, line: String) {
        let mut state = lock(&self.state);
        if state.lines.len() >= LOG_CAPACITY {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
        drop(state);
        self.changed.notify_all();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }

    fn tail(&self) -> String {
        let state = lock(&self.state);
        state
            .lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Wait until `done(state)` holds or the deadline passes; returns whether it held.
    fn wait_until(&self, deadline: Instant, done: impl Fn(&LogState) -> bool) -> bool {
        let mut state = lock(&self.state);
        loop {
            if done(&state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.changed.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

async fn run_blocking<T, F>(f: F) -> Result<T, HarnessError>
where
    F: FnOnce() -> Result<T, HarnessError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HarnessError::Internal(format!("blocking task failed: {e}")))?
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), HarnessError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(drop)
        .map_err(|e| HarnessError::Internal(format!("cannot spawn thread {name}: {e}")))
}

fn start_blocking(opts: &LocalCloudBuilder, shared: bool) -> Result<LocalCloud, HarnessError> {
    let started = Instant::now();
    let deadline = started + opts.startup_timeout;
    let root = repo_root();
    let python = root.join(VENV_PYTHON);
    if !python.exists() {
        return Err(HarnessError::VenvMissing {
            python,
            repo_root: root,
        });
    }
    let launcher = root.join(LAUNCHER);
    if !launcher.is_file() {
        return Err(HarnessError::LauncherMissing(launcher));
    }

    let mut cmd = Command::new(&python);
    cmd.arg(&launcher)
        .args(["--port", "0"])
        .current_dir(&root)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &opts.lambda_endpoint {
        cmd.arg("--lambda-endpoint").arg(url);
    }
    if opts.verbose {
        cmd.arg("--verbose");
    }
    let mut child = cmd.spawn().map_err(|e| HarnessError::Spawn {
        program: format!("{} {}", python.display(), launcher.display()),
        source: Arc::new(e),
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // From here on, any early return drops `process`, which kills and reaps the child.
    let mut process = Process { child, stdin };
    let (Some(stdout), Some(stderr), Some(_)) = (stdout, stderr, process.stdin.as_ref()) else {
        return Err(HarnessError::Internal("child stdio pipes missing".into()));
    };

    let log = Arc::new(LogBuf::default());
    {
        let log = Arc::clone(&log);
        let echo = opts.verbose;
        spawn_thread("localcloud-stderr", move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        if echo {
                            eprintln!("[localcloud] {line}");
                        }
                        log.push(line);
                    }
                }
            }
            log.close();
        })?;
    }
    let (tx, rx) = mpsc::channel::<String>();
    spawn_thread("localcloud-stdout", move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    })?;

    // 1. READY line.
    let addr = loop {
        let now = Instant::now();
        let wait = deadline.saturating_duration_since(now);
        match rx.recv_timeout(wait) {
            Ok(line) => match line.strip_prefix("READY ") {
                Some(url) => {
                    break parse_ready_url(url).ok_or(HarnessError::BadReadyLine { line })?;
                }
                None => log.push(format!("[stdout] {line}")),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(HarnessError::StartTimeout {
                    timeout: opts.startup_timeout,
                    stderr: log.tail(),
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(exited_error(&mut process, &log, &root));
            }
        }
    };
    let endpoint_url = format!("http://{addr}");

    // 2. Lambda routing confirmed by the launcher (logged to stderr before READY).
    let lambda_routing = match &opts.lambda_endpoint {
        None => None,
        Some(url) => {
            let needle = format!("lambda routing -> {url} ");
            let confirmed = log.wait_until(deadline, |s| {
                s.closed || s.lines.iter().any(|l| l.contains(&needle))
            }) && lock(&log.state).lines.iter().any(|l| l.contains(&needle));
            if !confirmed {
                return Err(HarnessError::LambdaRoutingNotConfirmed {
                    url: url.clone(),
                    stderr: log.tail(),
                });
            }
            Some(url.clone())
        }
    };

    // 3. The HTTP side answers. The socket is listening before READY, so the first attempt
    //    normally succeeds; retry only until the deadline, and stop early if the child died.
    let url = format!("{endpoint_url}/moto-api/");
    loop {
        let detail = match http_request(addr, "GET", "/moto-api/") {
            Ok((200, _)) => break,
            Ok((status, _)) => format!("status {status}"),
            Err(e) => e.to_string(),
        };
        if let Ok(Some(_)) = process.child.try_wait() {
            return Err(exited_error(&mut process, &log, &root));
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Http {
                method: "GET".into(),
                url,
                detail: format!("{detail}; launcher stderr:\n{}", log.tail()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    Ok(LocalCloud {
        endpoint_url,
        addr,
        lambda_routing,
        shared,
        startup_time: started.elapsed(),
        log,
        _process: process,
    })
}

/// `http://127.0.0.1:<port>` -> socket address.
fn parse_ready_url(url: &str) -> Option<SocketAddr> {
    let hostport = url.strip_prefix("http://")?;
    if hostport.contains('/') {
        return None;
    }
    hostport.parse().ok()
}

fn exited_error(process: &mut Process, log: &LogBuf, root: &Path) -> HarnessError {
    let status = process.child.wait();
    // Let the stderr reader drain what the launcher wrote before exiting.
    log.wait_until(Instant::now() + Duration::from_secs(5), |s| s.closed);
    let stderr = log.tail();
    match status {
        Ok(s) if s.code() == Some(2) && stderr.contains(BOOTSTRAP_COMMAND) => {
            HarnessError::MotoMissing {
                repo_root: root.to_path_buf(),
                stderr,
            }
        }
        Ok(s) if s.code() == Some(3) => HarnessError::MotoInternalsChanged { stderr },
        Ok(s) => HarnessError::Exited {
            status: s.to_string(),
            stderr,
        },
        Err(e) => HarnessError::Exited {
            status: format!("unknown: {e}"),
            stderr,
        },
    }
}

/// Minimal HTTP/1.1 request with an empty body; returns (status, body).
fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let invalid =
        || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let header_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(invalid)?;
    let head = String::from_utf8_lossy(&response[..header_end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(invalid)?;
    Ok((status, response[header_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ready_url() {
        assert_eq!(
            parse_ready_url("http://127.0.0.1:4566"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4566)))
        );
        assert_eq!(parse_ready_url("http://127.0.0.1:4566/x"), None);
        assert_eq!(parse_ready_url("127.0.0.1:4566"), None);
    }

    #[test]
    fn unique_names_are_unique_and_sanitized() {
        let a = unique_name("My_Table");
        let b = unique_name("My_Table");
        assert_ne!(a, b);
        assert!(a.starts_with("my-table-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn missing_venv_error_says_what_to_run() {
        let err = HarnessError::VenvMissing {
            python: repo_root().join(VENV_PYTHON),
            repo_root: repo_root(),
        };
        let msg = err.to_string();
        assert!(msg.contains("Run `scripts/bootstrap-python`"), "{msg}");
        assert!(msg.contains(".venv/bin/python"), "{msg}");
    }

    #[test]
    fn repo_root_has_the_launcher() {
        assert!(repo_root().join(LAUNCHER).is_file());
    }
}
