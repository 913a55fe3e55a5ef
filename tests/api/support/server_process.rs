//! keymeter as a real process: for what only a process shows (signals, its
//! logs, several servers on one database).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A keymeter server process, killed when dropped. Everything it prints is kept.
pub struct ServerProcess {
    child: Child,
    pub addr: String,
    output: Arc<Mutex<Vec<String>>>,
    /// The threads copying stdout and stderr into `output`: they end at the
    /// pipes' end, so joining them after an exit means every line is kept.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts the binary on `database_url` with these extra environment
    /// variables, and waits until it listens.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keymeter"));
        command
            .env("DATABASE_URL", database_url)
            .env("KEYMETER_BIND", "127.0.0.1:0")
            .env("KEYMETER_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting the keymeter binary");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (listening_tx, listening_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let listening_tx = listening_tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some((_, addr)) = line.split_once("keymeter listening addr=") {
                        let _ = listening_tx.send(addr.trim().to_owned());
                    }
                    output.lock().unwrap().push(line);
                }
            }));
        }
        let addr = listening_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("keymeter did not start: {:#?}", output.lock().unwrap()));
        Self {
            child,
            addr,
            output,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (TERM, KILL) with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`, and for everything it
    /// printed to be read.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for keymeter") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "keymeter still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub async fn graphql(
        &self,
        client: &reqwest::Client,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> Value {
        let mut request = client
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a JSON response")
    }

    pub async fn verify(&self, client: &reqwest::Client, input: Value) -> Value {
        let response = self
            .graphql(
                client,
                crate::helpers::VERIFY_KEY,
                json!({ "input": input }),
                None,
            )
            .await;
        assert!(response.get("errors").is_none(), "{response:#}");
        response["data"]["verifyKey"].clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
