//! Real gateways in front of keymeter for the gateway tests: Debian's nginx and
//! Caddy, each run as a foreground process on the very file the README shows
//! (deploy/nginx.conf, deploy/Caddyfile) with only its three addresses changed,
//! and `Upstream`, the API behind them, which records what reached it.
//! Installed by scripts/gateways.sh; without them the tests skip with a
//! message, except with CI=true, where that fails them.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a gateway gets to listen, and then to stop.
const PATIENCE: Duration = Duration::from_secs(15);

/// The addresses the deploy/ files name, which the harness replaces: keymeter,
/// the API behind the gateway, and the gateway itself.
const KEYMETER: &str = "127.0.0.1:8000";
const UPSTREAM: &str = "127.0.0.1:9000";
const LISTEN: &str = "127.0.0.1:8080";

/// What each of a gateway's processes may print, kept in its directory.
const LOGS: [&str; 3] = ["stdout", "stderr", "error.log"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// Its file in deploy/, copied under the same name.
    fn config_file(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx.conf",
            Kind::Caddy => "Caddyfile",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// One gateway process listening on `addr`, with its configuration, temp
/// files and logs in `dir`; stopped and `dir` removed when dropped.
pub struct Gateway {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    process: Child,
}

impl Gateway {
    /// deploy/nginx.conf in front of `keymeter` and `upstream`, or None when
    /// nginx is missing outside CI.
    pub fn nginx(keymeter: SocketAddr, upstream: SocketAddr) -> Option<Self> {
        Self::start(Kind::Nginx, keymeter, upstream)
    }

    /// deploy/Caddyfile in front of `keymeter` and `upstream`, or None when
    /// Caddy is missing outside CI.
    pub fn caddy(keymeter: SocketAddr, upstream: SocketAddr) -> Option<Self> {
        Self::start(Kind::Caddy, keymeter, upstream)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the gateway has logged so far, for failure messages.
    pub fn log(&self) -> String {
        LOGS.iter()
            .filter_map(|name| {
                let text = fs::read_to_string(self.dir.join(name)).ok()?;
                Some(format!("--- {name}\n{text}"))
            })
            .collect()
    }

    fn start(kind: Kind, keymeter: SocketAddr, upstream: SocketAddr) -> Option<Self> {
        let program = installed(kind.program())?;
        let addr = free_addr();
        let dir = fresh_dir(kind);
        let config = dir.join(kind.config_file());
        let text = configuration(kind.config_file(), keymeter, upstream, addr);
        fs::write(&config, text).expect("writing the gateway's configuration");
        let mut command = Command::new(program);
        match kind {
            // daemon off (in the file) keeps nginx in the foreground, as our
            // child; -e because nginx opens its built-in error log (under
            // /var/log, not writable without root) before reading the file.
            Kind::Nginx => command
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&config),
            // Caddy writes its state under these; the user's own are left alone.
            Kind::Caddy => command
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(&config)
                .env("HOME", &dir)
                .env("XDG_DATA_HOME", &dir)
                .env("XDG_CONFIG_HOME", &dir),
        };
        command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file(&dir, "stdout"))
            .stderr(log_file(&dir, "stderr"));
        let process = command
            .spawn()
            .unwrap_or_else(|error| panic!("starting {kind}: {error}"));
        // Built before waiting, so that a failure to start still stops it and
        // removes its directory (the panic message keeps the logs).
        let mut gateway = Self {
            kind,
            addr,
            dir,
            process,
        };
        gateway.wait_until_listening();
        Some(gateway)
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(self.addr).is_err() {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.kind,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {} within {PATIENCE:?}:\n{}",
                self.kind,
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Also when a test fails half-way. nginx's master is asked to stop (TERM),
/// not killed: its worker outlives a killed master and keeps serving the
/// port; the master stops it first, then exits.
impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        while matches!(self.process.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The program's path, or None (the test skips) when it is missing outside CI.
/// /usr/sbin is looked in too: Debian's nginx lives there, and a user's PATH
/// often leaves it out.
fn installed(program: &str) -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(program);
    let found = crate::browser::find(program).or_else(|| sbin.is_file().then_some(sbin));
    if found.is_none() {
        crate::helpers::skip(&format!("{program} is missing (scripts/gateways.sh)"));
    }
    found
}

/// A port nothing listens on now, for a process to bind.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A new directory searchable by others: nginx started as root runs its worker
/// as `nobody`, which must reach the temp directories inside (bodies and
/// answers larger than its buffers go there), whatever the umask.
fn fresh_dir(kind: Kind) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keymeter-{kind}-{}", Uuid::new_v4()));
    fs::create_dir(&dir).expect("creating the gateway's directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .expect("opening the gateway's directory to its worker");
    dir
}

fn log_file(dir: &Path, name: &str) -> fs::File {
    fs::File::create(dir.join(name)).expect("creating a log file")
}

/// deploy/`file` with its illustrative addresses replaced by these. Each must
/// be there: a file that stopped naming one would silently test less.
fn configuration(
    file: &str,
    keymeter: SocketAddr,
    upstream: SocketAddr,
    listen: SocketAddr,
) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path:?}: {error}"));
    [(KEYMETER, keymeter), (UPSTREAM, upstream), (LISTEN, listen)]
        .into_iter()
        .fold(text, |text, (illustrative, real)| {
            assert!(
                text.contains(illustrative),
                "deploy/{file} no longer names {illustrative}"
            );
            text.replace(illustrative, &real.to_string())
        })
}

/// One request as a test server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub async fn read(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("reading a request's body");
        Self {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
        }
    }

    /// The header's value; None when absent or not text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// An axum app served on a random port of 127.0.0.1 until dropped.
pub struct InProcess {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl InProcess {
    pub async fn serve(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a test server");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serving");
        });
        Self { addr, task }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The API behind the gateway: answers 200 `upstream saw <path>` to anything
/// (502 for the paths told to fail) and records every request.
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
    _server: InProcess,
}

#[derive(Default)]
struct UpstreamState {
    seen: Mutex<Vec<Seen>>,
    failing: Mutex<HashSet<String>>,
}

impl Upstream {
    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState::default());
        let server =
            InProcess::serve(Router::new().fallback(answer).with_state(state.clone())).await;
        Self {
            addr: server.addr,
            state,
            _server: server,
        }
    }

    /// Every request it has received, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// From now on `path` answers 502, as an API that failed to serve a call
    /// (whose credits the gateway should then give back).
    pub fn fail(&self, path: &str) {
        self.state.failing.lock().unwrap().insert(path.to_owned());
    }
}

async fn answer(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    let seen = Seen::read(request).await;
    let path = seen.path.clone();
    let failing = state.failing.lock().unwrap().contains(&path);
    state.seen.lock().unwrap().push(seen);
    if failing {
        (StatusCode::BAD_GATEWAY, format!("upstream failed {path}")).into_response()
    } else {
        format!("upstream saw {path}").into_response()
    }
}
