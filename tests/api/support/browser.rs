//! A real browser for the dashboard tests: Debian's Chromium, driven
//! through ChromeDriver over WebDriver (fantoccini). Installed by
//! scripts/browser.sh; without it the tests skip with a message, except
//! with CI=true, where that fails them.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long a page gets to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// One ChromeDriver with one Chromium session, both ended when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

/// The program on the PATH, if any.
pub fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|path| path.is_file())
}

impl Browser {
    /// A fresh browser (its own profile), or None when Chromium or
    /// ChromeDriver is missing outside CI.
    pub async fn start() -> Option<Self> {
        let (Some(chromium), Some(chromedriver)) = (find("chromium"), find("chromedriver")) else {
            crate::helpers::skip("chromium/chromedriver are missing (scripts/browser.sh)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!("keymeter-chromium-{}", Uuid::new_v4()));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "unhandledPromptBehavior": "accept",
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Some(Self {
            client,
            driver,
            profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigating");
    }

    /// The first element matching `css` once it is displayed.
    pub async fn shown(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if element.is_displayed().await.unwrap_or(false) {
                    return element;
                }
            }
            assert!(Instant::now() < deadline, "{css} was not shown");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `css` is absent or hidden.
    pub async fn gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Err(_) => return,
                Ok(element) if !element.is_displayed().await.unwrap_or(false) => return,
                Ok(_) => {}
            }
            assert!(Instant::now() < deadline, "{css} is still shown");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the text of `css` contains `expected`; returns the text.
    pub async fn text_of(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.script_text(css).await;
            if text.contains(expected) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never said {expected:?}; it says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn script_text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        let value = self.js(script, vec![json!(css)]).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The button (or other control) whose accessible text is `name`, inside `scope`.
    /// The scope is found again on each try: a page that re-renders it
    /// (a table row after a refresh) leaves the old element stale.
    pub async fn button(&self, scope: &str, name: &str) -> Element {
        let xpath = format!(".//button[normalize-space()='{name}']");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let within = self.shown(scope).await;
            if let Ok(button) = within.find(Locator::XPath(&xpath)).await {
                if button.is_displayed().await.unwrap_or(false) {
                    return button;
                }
            }
            assert!(Instant::now() < deadline, "no button {name:?} in {scope}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clicks the button `name` inside `scope`, finding it again if the
    /// page re-rendered it between the find and the click.
    pub async fn click(&self, scope: &str, name: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.button(scope, name).await.click().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "could not click {name:?} in {scope}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Types `text` into the field labelled `label` (by its visible label).
    pub async fn fill(&self, label: &str, text: &str) {
        let xpath = format!("//label[normalize-space()='{label}']");
        let label = self.client.find(Locator::XPath(&xpath)).await.expect(label);
        let id = label
            .attr("for")
            .await
            .unwrap()
            .expect("a label for a control");
        let field = self.shown(&format!("[id='{id}']")).await;
        field.clear().await.expect("clearing");
        field.send_keys(text).await.expect("typing");
    }

    pub async fn select(&self, css: &str, value: &str) {
        let select = self.shown(css).await;
        select.select_by_value(value).await.expect("selecting");
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .expect("running a script")
    }

    /// A PNG of the whole page laid out `width` pixels wide.
    pub async fn screenshot(&self, width: u32, path: &std::path::Path) {
        self.client
            .set_window_size(width, 800)
            .await
            .expect("resizing");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Tall enough for the whole page: a screenshot is of the window.
        let page = "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]";
        let sizes = self.js(page, vec![]).await;
        let height = sizes[0].as_u64().unwrap_or(800) + sizes[1].as_u64().unwrap_or(0);
        let height = height.min(3000) as u32;
        self.client
            .set_window_size(width, height)
            .await
            .expect("resizing");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the WebDriver session; the driver goes with `drop`.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Also when a test fails half-way: ChromeDriver (which ends its Chromium)
/// is stopped and the profile removed.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
