//! An SMTP server in the test process that keeps every message it is
//! given: enough of RFC 5321 for lettre over plain `smtp://` (no STARTTLS),
//! with AUTH PLAIN and LOGIN accepted whatever the password (so that
//! credentials in the URL can be seen to arrive), and deliveries that can
//! be made to fail with 451 to exercise retries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's sender (MAIL FROM), without the angle brackets.
    pub from: String,
    /// The envelope's recipients (RCPT TO), in order.
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, without the final ".".
    pub data: String,
    /// The user name the client authenticated as, if it did.
    pub user: Option<String>,
}

#[derive(Default)]
struct Recorded {
    messages: Vec<Received>,
    /// Deliveries still to refuse with 451.
    to_fail: usize,
    /// Deliveries refused so far.
    failed: usize,
}

/// The sink, listening until dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let accepting = tokio::spawn({
            let recorded = recorded.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, recorded.clone()));
                }
            }
        });
        Self {
            addr,
            recorded,
            accepting,
        }
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP, as lettre reads it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, in the order they were.
    pub fn messages(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().messages.clone()
    }

    /// Makes the next `n` deliveries fail: their DATA is answered 451.
    pub fn fail_next(&self, n: usize) {
        self.recorded.lock().unwrap().to_fail = n;
    }

    /// Deliveries refused with 451 so far.
    pub fn failures(&self) -> usize {
        self.recorded.lock().unwrap().failed
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One client's session, until QUIT or the connection's end.
async fn serve(stream: TcpStream, recorded: Arc<Mutex<Recorded>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut session = Session::default();
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN\r\n".into(),
            "HELO" => "250 sink\r\n".into(),
            "AUTH" => match authenticate(command, &mut lines, &mut write).await {
                Some(user) => {
                    session.user = Some(user);
                    "235 2.7.0 accepted\r\n".into()
                }
                None => "501 5.5.2 cannot decode\r\n".into(),
            },
            "MAIL" => {
                session.from = Some(address(command));
                session.to.clear();
                "250 2.1.0 ok\r\n".into()
            }
            "RCPT" if session.from.is_some() => {
                session.to.push(address(command));
                "250 2.1.5 ok\r\n".into()
            }
            "RCPT" => "503 5.5.1 MAIL first\r\n".into(),
            "DATA" if session.to.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
            "DATA" => {
                if write
                    .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let Some(data) = read_data(&mut lines).await else {
                    return;
                };
                let received = Received {
                    from: session.from.take().unwrap_or_default(),
                    to: std::mem::take(&mut session.to),
                    data,
                    user: session.user.clone(),
                };
                let mut recorded = recorded.lock().unwrap();
                if recorded.to_fail > 0 {
                    recorded.to_fail -= 1;
                    recorded.failed += 1;
                    "451 4.3.0 try again later\r\n".into()
                } else {
                    recorded.messages.push(received);
                    "250 2.0.0 queued\r\n".into()
                }
            }
            "RSET" => {
                session.from = None;
                session.to.clear();
                "250 2.0.0 ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 not implemented\r\n".into(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[derive(Default)]
struct Session {
    from: Option<String>,
    to: Vec<String>,
    user: Option<String>,
}

/// The address between `<` and `>` of MAIL FROM or RCPT TO, parameters
/// such as `BODY=8BITMIME` after it ignored.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// The lines after DATA up to the lone ".", with the leading dot of every
/// dot-stuffed line removed (RFC 5321 4.5.2); `None` if the client left.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == ".\r\n" || line == ".\n" {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

/// Runs AUTH PLAIN (with or without an initial response) or AUTH LOGIN and
/// returns the user name given; any password is accepted.
async fn authenticate(
    command: &str,
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Option<String> {
    let mut words = command.split_whitespace().skip(1);
    let mechanism = words.next()?.to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let decode = |b64: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
    };
    let mut ask = async |prompt: &[u8]| -> Option<String> {
        write.write_all(prompt).await.ok()?;
        let mut line = String::new();
        lines.read_line(&mut line).await.ok()?;
        Some(line)
    };
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(response) => response,
                None => ask(b"334 \r\n").await?,
            };
            // authzid NUL authcid NUL password
            let decoded = decode(&response)?;
            let user = decoded.split(|&b| b == 0).nth(1)?;
            Some(String::from_utf8_lossy(user).into_owned())
        }
        "LOGIN" => {
            let user = match initial {
                Some(user) => user,
                // "Username:" and "Password:", base64-encoded.
                None => ask(b"334 VXNlcm5hbWU6\r\n").await?,
            };
            ask(b"334 UGFzc3dvcmQ6\r\n").await?;
            Some(String::from_utf8_lossy(&decode(&user)?).into_owned())
        }
        _ => None,
    }
}
