//! Headless Chromium driven over the DevTools protocol (CDP), for tests of the web dashboard.
//!
//! [`Chromium::start`] runs Debian's `chromium --headless=new` with a private profile and
//! `--remote-debugging-port=0`, reads the port from its `DevTools listening on ws://...`
//! line, finds the page it opened through `/json/list` and connects a websocket to that
//! page. Calls are synchronous: send `{id, method, params}`, then read messages until the
//! reply carrying that id (the events in between are not asked for and are dropped).
//!
//! The browser is killed when the [`Chromium`] is dropped, however the test ends.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Navigations tried while chromium reports the host's network changing.
const NAVIGATE_ATTEMPTS: usize = 5;
/// How long Chromium may take to start and open its page.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one protocol call may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The viewport (and screenshot) size.
pub const WINDOW: (u32, u32) = (1280, 800);

/// Fail the test unless Debian's `chromium` is installed; the test command installs it, so
/// a missing one is a broken set-up, not a reason to skip.
pub fn require_chromium() {
    let ok = Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "chromium is not installed: apt-get install chromium (scripts/test.sh does this)");
}

/// One headless browser with one page.
pub struct Chromium {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Declared last: the profile outlives the browser using it.
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub fn start() -> anyhow::Result<Self> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--remote-debugging-port=0", &format!("--window-size={},{}", WINDOW.0, WINDOW.1)])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting chromium")?;
        let port = match devtools_port(&mut child) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let ws = connect_page(port).inspect_err(|_| {
            let _ = child.kill();
        })?;
        let mut browser = Self { child, ws, next_id: 1, _profile: profile };
        // The viewport itself is WINDOW (a headless window's size includes its frame).
        let (width, height) = WINDOW;
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        browser.call("Emulation.setDeviceMetricsOverride", metrics)?;
        Ok(browser)
    }

    /// Call one protocol method; its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(request)).with_context(|| format!("sending {method}"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        while Instant::now() < deadline {
            let text = match self.ws.read().with_context(|| format!("waiting for the answer to {method}"))? {
                Message::Text(t) => t,
                Message::Close(_) => bail!("chromium closed the connection during {method}"),
                _ => continue,
            };
            let reply: Value = serde_json::from_str(text.as_str()).context("a DevTools message is JSON")?;
            if reply["id"] != id {
                continue; // an event
            }
            if let Some(err) = reply.get("error") {
                bail!("{method} failed: {err}");
            }
            return Ok(reply["result"].clone());
        }
        bail!("no answer to {method} within {CALL_TIMEOUT:?}")
    }

    /// Load `url` in the page (returns once the navigation is committed, not loaded).
    ///
    /// Chromium aborts a navigation with `net::ERR_NETWORK_CHANGED` when the host's network
    /// interfaces change meanwhile (other tests create and delete veths and namespaces all
    /// the time); that says nothing about the page, so the navigation is tried again.
    pub fn navigate(&mut self, url: &str) -> anyhow::Result<()> {
        for _ in 0..NAVIGATE_ATTEMPTS {
            let r = self.call("Page.navigate", json!({"url": url}))?;
            match r["errorText"].as_str() {
                Some(e) if e.contains("ERR_NETWORK_CHANGED") => std::thread::sleep(Duration::from_millis(200)),
                Some(e) if !e.is_empty() => bail!("navigating to {url}: {e}"),
                _ => return Ok(()),
            }
        }
        bail!("navigating to {url}: the host's network kept changing ({NAVIGATE_ATTEMPTS} attempts)")
    }

    /// The value of a JavaScript expression in the page (promises are awaited); an
    /// exception thrown by it is an error.
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}))?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("{expression} threw: {}", ex["exception"]["description"].as_str().unwrap_or(&ex.to_string()));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expression` until it evaluates to `want`, for at most `limit`; panics with the
    /// last value seen (or the last error) when it never does.
    pub fn wait_until(&mut self, what: &str, expression: &str, want: impl Into<Value>, limit: Duration) {
        let want = want.into();
        let deadline = Instant::now() + limit;
        loop {
            let got = self.eval(expression);
            if got.as_ref().is_ok_and(|v| *v == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}: `{expression}` is {got:?}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Save the page as it looks now, as a PNG of [`WINDOW`]'s size.
    pub fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = r["data"].as_str().ok_or_else(|| anyhow!("no screenshot data: {r}"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data).context("screenshot is base64")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in Chromium's `DevTools listening on ws://127.0.0.1:<port>/...` line. Its
/// stderr is drained for as long as it runs, so the browser never blocks on a full pipe.
fn devtools_port(child: &mut Child) -> anyhow::Result<u16> {
    let stderr = child.stderr.take().context("chromium's stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            bail!("chromium printed no DevTools address within {START_TIMEOUT:?}:\n{}", seen.join("\n"));
        };
        if let Some(url) = line.strip_prefix("DevTools listening on ws://") {
            let port = url.split('/').next().and_then(|hp| hp.rsplit(':').next()).and_then(|p| p.parse().ok());
            return port.ok_or_else(|| anyhow!("unexpected DevTools line {line:?}"));
        }
        seen.push(line);
    }
}

/// A websocket to the page target Chromium opened (`about:blank`).
fn connect_page(port: u16) -> anyhow::Result<WebSocket<TcpStream>> {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = loop {
        let targets: Vec<Value> = json_list(port).unwrap_or_default();
        let page = targets.iter().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str());
        if let Some(url) = page {
            break url.to_string();
        }
        if Instant::now() >= deadline {
            bail!("chromium listed no page within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to chromium")?;
    stream.set_read_timeout(Some(CALL_TIMEOUT))?;
    let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| anyhow!("websocket to {url}: {e}"))?;
    Ok(ws)
}

/// `GET /json/list`: the targets. Chromium keeps the connection open after answering, so
/// the body is read by its Content-Length.
fn json_list(port: u16) -> anyhow::Result<Vec<Value>> {
    use std::io::{Read, Write};
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut reader = BufReader::new(conn);
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0; length.context("/json/list without Content-Length")?];
    reader.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}
