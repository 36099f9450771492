//! A small WebDriver (W3C) client for Debian's chromium through chromium-driver: enough to
//! drive the pages as a person does — by mouse or by keyboard alone — take screenshots, and
//! read the browser's console.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for something on the page lasts.
const PATIENCE: Duration = Duration::from_secs(15);

/// WebDriver's key codes.
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const SPACE: &str = "\u{E00D}";
    pub const SHIFT: &str = "\u{E008}";
    pub const ESCAPE: &str = "\u{E00C}";
}

/// A running chromium, driven through chromedriver; both stop when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

/// An element on the page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromium headless with a `width` × `height` window.
    pub fn start(width: u32, height: u32) -> Result<Self> {
        crate::packages::ensure(&[
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
        ]);
        let driver_path = crate::packages::find_program(&["chromedriver", "chromium-driver"]).context(
            "chromedriver is not installed: `apt-get install chromium chromium-driver` (the browser tests never skip)",
        )?;
        let chromium = crate::packages::find_program(&["chromium", "chromium-browser"])
            .context("chromium is not installed: `apt-get install chromium chromium-driver`")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready");
            }
            thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir()?;
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let created = browser.command("POST", "/session", Some(&caps))?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(browser)
    }

    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let result = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.cloned().unwrap_or(json!({})).to_string().as_bytes()),
        };
        let mut response = result.with_context(|| format!("{method} {path}"))?;
        let value: Value = response.body_mut().read_json()?;
        if let Some(error) = value["value"]["error"].as_str() {
            bail!(
                "{method} {path}: {error}: {}",
                value["value"]["message"].as_str().unwrap_or_default()
            );
        }
        Ok(value["value"].clone())
    }

    fn session(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.session("POST", "/url", Some(&json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        )
        .unwrap_or_else(|e| panic!("resize: {e:#}"));
    }

    fn try_find(&self, css: &str) -> Option<Element> {
        self.session(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(|id| Element(id.to_string())))
    }

    fn all(&self, css: &str) -> Vec<Element> {
        self.session(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": css })),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v[ELEMENT].as_str().map(|id| Element(id.to_string())))
        .collect()
    }

    /// What `probe` answers once it answers something, trying every 50 ms; past the patience,
    /// a failure naming `what` with the page's text.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if Instant::now() > deadline {
                let text = self.body_text();
                panic!("waited in vain for {what}; the page says:\n{text}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first element matching `css`, once there is one.
    pub fn find(&self, css: &str) -> Element {
        self.wait(css, || self.try_find(css))
    }

    /// The first visible element matching `css` whose text contains `text`.
    pub fn find_text(&self, css: &str, text: &str) -> Element {
        self.wait(&format!("{css} with text {text:?}"), || {
            self.all(css)
                .into_iter()
                .find(|e| self.displayed(e) && self.text(e).contains(text))
        })
    }

    /// Waits until the page shows `text`.
    pub fn wait_text(&self, text: &str) {
        self.wait(&format!("the text {text:?}"), || {
            self.body_text().contains(text).then_some(())
        });
    }

    /// Waits until the page no longer says `text`.
    pub fn wait_gone(&self, text: &str) {
        self.wait(&format!("the text {text:?} to go"), || {
            (!self.body_text().contains(text)).then_some(())
        });
    }

    /// Everything the page shows.
    pub fn body_text(&self) -> String {
        self.try_find("body")
            .map(|b| self.text(&b))
            .unwrap_or_default()
    }

    fn displayed(&self, e: &Element) -> bool {
        self.session("GET", &format!("/element/{}/displayed", e.0), None)
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// An element's visible text.
    pub fn text(&self, e: &Element) -> String {
        self.session("GET", &format!("/element/{}/text", e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// An element's attribute (or property).
    pub fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.session("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Clicks, as a mouse does.
    pub fn click(&self, e: &Element) {
        self.session("POST", &format!("/element/{}/click", e.0), None)
            .unwrap_or_else(|err| panic!("click: {err:#}"));
    }

    /// Clicks the first visible `css` element with `text`, once it is enabled (as a person
    /// waits for a greyed-out button).
    pub fn click_text(&self, css: &str, text: &str) {
        let e = self.find_enabled(css, text);
        self.click(&e);
    }

    /// The first visible `css` element with `text`, once it is enabled.
    pub fn find_enabled(&self, css: &str, text: &str) -> Element {
        self.wait(&format!("an enabled {css} with text {text:?}"), || {
            self.all(css)
                .into_iter()
                .find(|e| self.displayed(e) && self.enabled(e) && self.text(e).contains(text))
        })
    }

    fn enabled(&self, e: &Element) -> bool {
        self.session("GET", &format!("/element/{}/enabled", e.0), None)
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Double-clicks an element with the mouse, as one quick gesture: both clicks land where
    /// the pointer is, whatever the first one opened there.
    pub fn double_click(&self, e: &Element) {
        let origin = json!({ ELEMENT: e.0 });
        let actions = json!([
            { "type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": 0 },
            { "type": "pointerDown", "button": 0 },
            { "type": "pointerUp", "button": 0 },
            { "type": "pointerDown", "button": 0 },
            { "type": "pointerUp", "button": 0 },
        ]);
        self.session(
            "POST",
            "/actions",
            Some(&json!({ "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": actions,
            }] })),
        )
        .unwrap_or_else(|err| panic!("double-click: {err:#}"));
        let _ = self.session("DELETE", "/actions", None);
    }

    /// Types into an element (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        let _ = self.session("POST", &format!("/element/{}/clear", e.0), None);
        self.session(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(&json!({ "text": text })),
        )
        .unwrap_or_else(|err| panic!("type into {css}: {err:#}"));
    }

    /// Presses keys on the keyboard (each key down and up, in order).
    pub fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": k.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": k.to_string() }));
        }
        self.session(
            "POST",
            "/actions",
            Some(&json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        )
        .unwrap_or_else(|e| panic!("press keys: {e:#}"));
    }

    /// The element that has the keyboard focus.
    pub fn focused(&self) -> Option<Element> {
        self.session("GET", "/element/active", None)
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(|id| Element(id.to_string())))
    }

    /// What a screen reader names the focused element: its aria-label, its label, or (for a
    /// button, link or summary) its text.
    fn focused_name(&self) -> String {
        self.execute(
            "const e = document.activeElement; if (!e) return ''; \
             if (e.getAttribute('aria-label')) return e.getAttribute('aria-label'); \
             const label = e.id ? document.querySelector(`label[for=\"${e.id}\"]`) : null; \
             if (label) return label.textContent; \
             if (['BUTTON', 'A', 'SUMMARY'].includes(e.tagName)) return e.textContent; \
             return e.getAttribute('name') || '';",
            &[],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Presses Tab until the focused element's name contains `name` (at most 80 times), as a
    /// keyboard user moves through the page.
    pub fn tab_to(&self, name: &str) {
        for _ in 0..80 {
            self.press(keys::TAB);
            if self.focused_name().contains(name) {
                return;
            }
        }
        panic!(
            "Tab never reached {name:?}; the page says:\n{}",
            self.body_text()
        );
    }

    /// Tabs to the element named `name` and presses Enter on it, as a keyboard user does.
    pub fn enter_on(&self, name: &str) {
        self.tab_to(name);
        self.press(keys::ENTER);
    }

    /// Runs a script in the page; answers its return value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
        .unwrap_or_else(|e| panic!("execute script: {e:#}"))
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`; answers its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self
            .session("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e:#}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot data: {e}"));
        let dir = crate::root().join("target/screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("save screenshot: {e}"));
        path
    }

    /// The console messages since the last call (errors, CSP violations, warnings, logs).
    pub fn console(&self) -> Vec<Value> {
        self.session("POST", "/se/log", Some(&json!({ "type": "browser" })))
            .unwrap_or_else(|e| panic!("read the browser's console: {e:#}"))
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("the browser's console log is not a list"))
    }

    /// Problems a person relying on assistive technology or on contrast would meet on the
    /// current page: form fields without a label, and text under WCAG 2.2 AA contrast
    /// (4.5:1, or 3:1 for large text) against its background.
    pub fn accessibility_problems(&self) -> Vec<String> {
        let found = self.execute(ACCESSIBILITY_CHECK, &[]);
        found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// Fails when the browser reported an error or a Content-Security-Policy violation.
    pub fn assert_clean_console(&self) {
        let problems: Vec<Value> = self
            .console()
            .into_iter()
            .filter(|m| {
                let text = m["message"].as_str().unwrap_or_default();
                m["level"] == "SEVERE"
                    || text.contains("Content Security Policy")
                    || text.contains("Refused to")
            })
            // A failed API call that the page handles (a 401 before sign-in, a refused
            // password) is logged by chromium as a network error: it is not a page error.
            .filter(|m| {
                let text = m["message"].as_str().unwrap_or_default();
                !(text.contains("Failed to load resource") && text.contains("/api/"))
            })
            .collect();
        assert!(problems.is_empty(), "the browser reported: {problems:#?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs in the page: unlabelled fields and low-contrast text, as sentences.
const ACCESSIBILITY_CHECK: &str = r#"
const problems = [];
const visible = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (!visible(e) || e.type === 'hidden') continue;
  const label = (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label');
  if (!label && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')) problems.push(`unlabelled ${e.tagName} ${e.name}`);
}
const rgb = (c) => { const m = c.match(/[\d.]+/g) || [0, 0, 0, 0]; return m.map(Number).concat(m.length < 4 ? [1] : []); };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const background = (e) => { for (let n = e; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor);
  if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
while (walker.nextNode()) {
  const e = walker.currentNode.parentElement;
  if (!e || seen.has(e) || !walker.currentNode.textContent.trim() || !visible(e)) continue;
  if (e.closest('[disabled]')) continue;
  seen.add(e);
  const s = getComputedStyle(e);
  const fg = rgb(s.color), bg = background(e);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need} for "${walker.currentNode.textContent.trim().slice(0, 40)}"`);
}
return problems;
"#;
