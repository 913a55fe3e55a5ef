//! A webhook receiver in the test process: an HTTP server on 127.0.0.1
//! that keeps every request it is sent (headers and body) and answers the
//! statuses a test queues (200 once the queue is empty), optionally after
//! a delay, so tests can see what keymeter sends and make it fail.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path it was sent to (endpoints of one test differ by path).
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    /// A header's value; panics when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Recorded {
    requests: Vec<Received>,
    /// Statuses still to answer, in order; then 200.
    statuses: VecDeque<u16>,
    delay: Option<Duration>,
}

/// The receiver, listening until dropped.
pub struct Receiver {
    addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    serving: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver on a port of its own.
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// A receiver on `addr`, say where a stopped one listened.
    pub async fn start_at(addr: SocketAddr) -> Self {
        Self::start_on(TcpListener::bind(addr).await.unwrap())
    }

    /// An address nothing listens on (yet): connections to it are refused
    /// until `start_at` it.
    pub fn unused_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    fn start_on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new().fallback(receive).with_state(recorded.clone());
        let serving = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            recorded,
            serving,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        url_at(self.addr, path)
    }

    /// Answers the next requests with `statuses`, in order, then 200 again.
    pub fn answer(&self, statuses: &[u16]) {
        self.recorded
            .lock()
            .unwrap()
            .statuses
            .extend(statuses.iter().copied());
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, delay: Duration) {
        self.recorded.lock().unwrap().delay = Some(delay);
    }

    /// Every request so far, in the order they came.
    pub fn requests(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().requests.clone()
    }

    /// The events of type `event_type` sent to `path`.
    pub fn events_to(&self, path: &str, event_type: &str) -> Vec<Received> {
        let mut requests = self.requests_to(path);
        requests.retain(|request| request.json()["type"] == event_type);
        requests
    }

    /// The requests sent to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        let mut requests = self.requests();
        requests.retain(|request| request.path == path);
        requests
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// The URL of `path` on a receiver at `addr`, running or not.
pub fn url_at(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn receive(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut recorded = recorded.lock().unwrap();
        recorded.requests.push(Received {
            path: uri.path().to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (recorded.statuses.pop_front().unwrap_or(200), recorded.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap()
}
