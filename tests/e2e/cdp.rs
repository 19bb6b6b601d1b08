//! A headless Chromium driven over the DevTools protocol, for the status
//! page's real-browser test.
//!
//! The browser is started with `--remote-debugging-pipe`: it reads
//! NUL-terminated JSON commands on its fd 3 and writes replies and events
//! on its fd 4, so no websocket (and no port) is needed. One page target
//! is attached in flat mode and every command is sent to its session.
//! Dropping a [`Browser`] closes it (then kills it if it lingers) and
//! removes its profile directory.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest wait for one command's reply.
const REPLY_WITHIN: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    to_browser: std::fs::File,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    profile: std::path::PathBuf,
    /// Exceptions the page threw and errors it logged, for failure messages.
    pub page_errors: Vec<String>,
}

/// A pipe whose both ends close on exec; the child's ends are moved to 3
/// and 4 in `pre_exec`, where `dup2` clears the flag on the copies.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned here only.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts `chromium` headless with a fresh profile in `profile` (a new
    /// directory, removed on drop) and a `width` x `height` window, and
    /// attaches to its blank page. The browser's own messages go to `log`,
    /// for when it does not start.
    pub fn start(
        chromium: &Path,
        profile: std::path::PathBuf,
        log: &Path,
        width: u32,
        height: u32,
    ) -> Browser {
        use std::os::fd::AsRawFd;
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let (r, w) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the chromium log"));
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork
        // and exec. The ends are first moved above 10 so that placing one
        // on 3 cannot overwrite the other.
        unsafe {
            command.pre_exec(move || {
                let high_r = libc::fcntl(r, libc::F_DUPFD, 10);
                let high_w = libc::fcntl(w, libc::F_DUPFD, 10);
                if high_r < 0
                    || high_w < 0
                    || libc::dup2(high_r, 3) < 0
                    || libc::dup2(high_w, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        drop((browser_reads, browser_writes));
        let (tx, replies) = mpsc::channel();
        let mut from_browser = std::fs::File::from(we_read);
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                match from_browser.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(value) = serde_json::from_slice::<Value>(&message[..end])
                        && tx.send(value).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser: std::fs::File::from(we_write),
            replies,
            next_id: 0,
            session: String::new(),
            profile,
            page_errors: Vec::new(),
        };
        let targets = browser.browser_call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .map(|t| t["targetId"].clone())
            .unwrap_or_else(|| {
                browser.browser_call("Target.createTarget", json!({"url": "about:blank"}))
                    ["targetId"]
                    .clone()
            });
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("send {method} to chromium: {e}"));
        let deadline = Instant::now() + REPLY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self.replies.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no reply from chromium to {method}: {e}; see its log in target/artifacts/")
            });
            if reply["method"] == "Runtime.exceptionThrown" {
                let details = &reply["params"]["exceptionDetails"];
                self.page_errors.push(format!(
                    "{} {} (line {})",
                    details["text"], details["exception"]["description"], details["lineNumber"]
                ));
            }
            if reply["method"] == "Runtime.consoleAPICalled" && reply["params"]["type"] == "error" {
                self.page_errors.push(reply["params"]["args"].to_string());
            }
            if reply["id"] != json!(id) {
                continue; // an event, or a late reply
            }
            if let Some(error) = reply.get("error") {
                panic!("chromium refused {method}: {error}");
            }
            return reply["result"].clone();
        }
    }

    /// A command to the browser itself.
    pub fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// A command to the attached page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    /// Loads `url` in the page and waits until it has loaded.
    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "chromium could not load {url}: {result}"
        );
        let loaded = format!(
            "document.readyState === 'complete' && location.href === {}",
            json!(url)
        );
        self.wait_for(
            "the page loads",
            REPLY_WITHIN,
            &loaded,
            "location.href + ' ' + document.readyState",
        );
    }

    /// Evaluates `expression` in the page and returns its value (awaited if
    /// it is a promise); panics on a thrown exception.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("the page threw evaluating `{expression}`: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` every 100 ms until it is `true`; panics naming
    /// `what` after `within`, with `explain` evaluated for the message.
    pub fn wait_for(&mut self, what: &str, within: Duration, expression: &str, explain: &str) {
        // A page still loading may not have the elements yet: a throw is
        // "not yet", not a failure.
        let guarded =
            format!("(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()");
        let start = Instant::now();
        while start.elapsed() < within {
            if self.eval(&guarded) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let seen = self.eval(explain);
        panic!(
            "{what}: not within {within:?}; the page shows {seen}; page errors: {:?}",
            self.page_errors
        );
    }

    /// A PNG of the page as it is drawn now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let result = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = result["data"].as_str().expect("screenshot data");
        decode_base64(data)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let mut bytes = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).unwrap();
        bytes.push(0);
        let _ = self.to_browser.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64, as DevTools sends screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').collect();
        let mut n = 0u32;
        for (i, c) in data.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGk="), b"hi");
    assert_eq!(decode_base64("YWJj"), b"abc");
}
