//! The editor's page in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) opens the page of a running `relink serve`, searches an article, pins an item of
//! relink's list, applies it, and the test checks the file on disk. Skipped (and said so) where
//! Debian's `chromium` and `chromium-driver` are not installed; `scripts/fetch-deps.sh browser`
//! installs them, and `.ci/run` does.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{request, Server};
use common::{relink_test_embedder as relink, text};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const TOKEN: &str = "page-token";

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = request(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(profile: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
        };
        // The flags a closed network needs: no background connections, no sandbox as root.
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-quic", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().unwrap().to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, answer) = request(
            self.addr,
            method,
            path,
            body.as_deref().map(str::as_bytes),
            None,
        );
        let v: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        v["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(
            method,
            &format!("/session/{}{path}", self.session),
            Some(body),
        )
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    fn find(&self, css: &str) -> String {
        let t = Instant::now();
        loop {
            let body = json!({"using": "css selector", "value": css}).to_string();
            let (status, answer) = request(
                self.addr,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(body.as_bytes()),
                None,
            );
            if status == 200 {
                let v: Value = serde_json::from_str(&answer).unwrap();
                return v["value"][ELEMENT].as_str().unwrap().to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{css} never appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text_of(&self, css: &str) -> String {
        let e = self.find(css);
        let (_, answer) = request(
            self.addr,
            "GET",
            &format!("/session/{}/element/{e}/text", self.session),
            None,
            None,
        );
        serde_json::from_str::<Value>(&answer).unwrap()["value"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits up to 10 s for the text of `css` to satisfy `ok`.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let got = self.text_of(css);
            if ok(&got) {
                return got;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{css}: {got:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.session("POST", &format!("/element/{e}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.session(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        );
    }
}

#[test]
fn an_editor_searches_pins_and_applies_in_the_page() {
    if !Path::new(CHROMIUM).is_file() || !Path::new(CHROMEDRIVER).is_file() {
        common::skip("Chromium or chromedriver not installed (scripts/fetch-deps.sh browser)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 40);
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Server::start(&d, &["--token", TOKEN]);
    let driver = Driver::start(&dir.path().join("profile"));
    driver.session(
        "POST",
        "/url",
        json!({ "url": format!("http://{}/", server.addr) }),
    );
    driver.type_into("#token", TOKEN);
    driver.type_into("#q", "harbour story");
    driver.click("#results li[data-path=\"a0000.md\"]");
    driver.wait_text("#title", |t| t.starts_with("harbour news 0:"));
    // The third entry of relink's list: pin it.
    let row = "#fresh tr:nth-child(3)";
    let title = driver.text_of(&format!("{row} td:nth-child(3)"));
    let title = title.lines().next().unwrap().to_string();
    driver.click(&format!("{row} button"));
    driver.wait_text("#fresh tr:nth-child(1) td:nth-child(2)", |t| t == "pin");
    let first = driver.text_of("#fresh tr:nth-child(1) td:nth-child(3)");
    assert_eq!(first.lines().next().unwrap(), title);
    driver.click("#apply");
    driver.wait_text("#status", |t| {
        t == "list written" || t == "the file already holds this list"
    });

    // On disk: the pin in the relink: map, and the list opening with it.
    let file = std::fs::read_to_string(d.join("a0000.md")).unwrap();
    let article =
        relink::article::parse_article(&file, relink::article::Source::File(d.join("a0000.md")))
            .unwrap();
    assert_eq!(article.control.pin.len(), 1, "{file}");
    assert_eq!(article.related.unwrap()[0].title, title);

    // A screenshot of the page, for the README.
    let png = driver.call(
        "GET",
        &format!("/session/{}/screenshot", driver.session),
        None,
    );
    let bytes = base64_decode(png.as_str().unwrap());
    assert!(bytes.starts_with(b"\x89PNG"));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("editor-page.png");
    std::fs::write(&shots, bytes).unwrap();
    eprintln!("screenshot: {}", shots.display());
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    out
}
