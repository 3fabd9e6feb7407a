//! `relink serve` over HTTP on an ephemeral loopback port: every endpoint, every refusal, a
//! folder changed under readers, and the command line writing beside the server. The server
//! runs with the test embedder.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{enc, Server};
use common::{relink_test_embedder as relink, text};
use serde_json::Value;

const TOKEN: &str = "s3cret-token";

fn corpus(dir: &Path, n: usize) -> std::path::PathBuf {
    let d = common::story_corpus(&dir.join("c"), n);
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d
}

fn titles(v: &Value) -> Vec<String> {
    v["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["entry"]["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn reads_answer_what_the_command_line_prints() {
    let dir = tempfile::tempdir().unwrap();
    let d = corpus(dir.path(), 40);
    let s = Server::start(&d, &[]);
    let health = s.json("/healthz");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["articles"], 40);

    // By path and by URL: the list `relink related --json` prints.
    let file = d.join("a0007.md");
    let cli = relink(&["related", file.to_str().unwrap(), "--json"]);
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let by_path = s.json("/v1/related?path=a0007.md");
    assert_eq!(by_path["related"], cli["related"]);
    assert_eq!(by_path["query"], cli["query"]);
    let by_url = s.json(&format!(
        "/v1/related?url={}",
        enc("https://example.com/storm/7")
    ));
    assert_eq!(by_url["related"], cli["related"]);
    // Options per request; the list the file holds on request.
    let three = s.json("/v1/related?path=a0007.md&k=3&lexical-weight=0&current=true");
    assert_eq!(three["related"].as_array().unwrap().len(), 3);
    assert_eq!(three["current"].as_array().unwrap().len(), 5);

    // Search by title.
    let found = s.json("/v1/search?q=museum+story&limit=4");
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results
        .iter()
        .all(|r| r["title"].as_str().unwrap().contains("museum")));
    assert!(results[0]["path"].as_str().unwrap().ends_with(".md"));

    // A draft: ranked like free text by the command line.
    let (status, body) = s.send(
        "POST",
        "/v1/related",
        r#"{"title": "harbour news: the harbour story goes on", "excerpt": "More on the harbour"}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let draft: Value = serde_json::from_str(&body).unwrap();
    assert!(
        titles(&draft)[..4].iter().all(|t| t.contains("harbour")),
        "{draft}"
    );

    // Concurrent drafts are embedded in fewer model calls than drafts.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let body = format!(r#"{{"title": "storm news {i}", "k": 2}}"#);
                common::http::request(addr, "POST", "/v1/related", Some(body.as_bytes()), None)
            })
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["related"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    let (_, metrics) = s.get("/metrics");
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(counter("relink_embeds_total"), 17);
    assert!(metrics.contains("relink_requests_total{route=\"/v1/related\",status=\"200\"}"));
    assert!(metrics.contains("relink_request_seconds_bucket{route=\"/v1/search\",le=\"+Inf\"} 1"));

    // The editor's page.
    let (status, page) = s.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>relink") && !page.contains("http://") && !page.contains("https://")
    );
}

#[test]
fn bad_requests_get_a_4xx_with_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = corpus(dir.path(), 12);
    let s = Server::start(&d, &["--token", TOKEN]);
    let before = common::snapshot(&d);
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(70_000));
    // method, path, body, token, the status wanted
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16);
    let cases: Vec<Case> = vec![
        ("GET", "/v1/related", None, None, 400),
        ("GET", "/v1/related?path=nope.md", None, None, 404),
        ("GET", "/v1/related?path=../../etc/passwd", None, None, 400),
        ("GET", "/v1/related?path=%2Fetc%2Fpasswd", None, None, 400),
        (
            "GET",
            "/v1/related?url=https://elsewhere.example/x",
            None,
            None,
            404,
        ),
        ("GET", "/v1/related?path=a0001.md&url=x", None, None, 400),
        ("GET", "/v1/related?path=a0001.md&k=0", None, None, 400),
        ("GET", "/v1/related?path=a0001.md&k=many", None, None, 400),
        (
            "GET",
            "/v1/related?path=a0001.md&colour=red",
            None,
            None,
            400,
        ),
        ("GET", "/v1/search", None, None, 400),
        ("GET", "/v1/search?q=x&limit=1000", None, None, 400),
        ("GET", "/v2/anything", None, None, 404),
        ("POST", "/v1/related", Some("{not json"), None, 400),
        ("POST", "/v1/related", Some("[1, 2]"), None, 400),
        (
            "POST",
            "/v1/related",
            Some(r#"{"excerpt": "no title"}"#),
            None,
            400,
        ),
        ("POST", "/v1/related", Some(r#"{"title": 5}"#), None, 400),
        (
            "POST",
            "/v1/related",
            Some(r#"{"title": "t", "publishedDateTime": "soon"}"#),
            None,
            400,
        ),
        ("POST", "/v1/related", Some(big.as_str()), None, 413),
        // Writes: a token, a valid one, an article, targets that exist.
        (
            "POST",
            "/v1/articles/refresh",
            Some(r#"{"path": "a0001.md"}"#),
            None,
            401,
        ),
        (
            "POST",
            "/v1/articles/refresh",
            Some(r#"{"path": "a0001.md"}"#),
            Some("wrong"),
            401,
        ),
        (
            "POST",
            "/v1/articles/refresh",
            Some(r#"{"path": "../c/a0001.md"}"#),
            Some(TOKEN),
            400,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "a0001.md"}"#),
            Some(TOKEN),
            400,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "a0001.md", "targets": [1]}"#),
            Some(TOKEN),
            400,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "a0001.md", "targets": ["none.md"]}"#),
            Some(TOKEN),
            422,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "a0001.md", "targets": ["a0001.md"]}"#),
            Some(TOKEN),
            422,
        ),
        (
            "DELETE",
            "/v1/articles/blocks",
            Some(r#"{"path": "a0001.md", "targets": ["a0002.md"]}"#),
            Some(TOKEN),
            422,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "/etc/passwd", "targets": ["a0002.md"]}"#),
            Some(TOKEN),
            400,
        ),
        (
            "POST",
            "/v1/articles/pins",
            Some(r#"{"path": "a0001.md", "targets": ["/etc/passwd"]}"#),
            Some(TOKEN),
            422,
        ),
    ];
    for (method, path, body, token, want) in cases {
        let (status, answer) = match body {
            Some(b) => s.send(method, path, b, token),
            None => s.get(path),
        };
        assert_eq!(status, want, "{method} {path} {body:?}: {answer}");
        let v: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {answer}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(
        common::snapshot(&d),
        before,
        "no refused request wrote a byte"
    );
    // Still answering.
    assert_eq!(s.json("/healthz")["status"], "ok");

    // Without a token, writes are off; a non-loopback address is refused at start.
    let open = Server::start(&d, &[]);
    let (status, answer) = open.send(
        "POST",
        "/v1/articles/refresh",
        r#"{"path": "a0001.md"}"#,
        Some(TOKEN),
    );
    assert_eq!(status, 403, "{answer}");
    let out = relink(&["serve", d.to_str().unwrap(), "--addr", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("without a token"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn writes_pin_block_lock_and_refresh_with_the_files_guarantees() {
    let dir = tempfile::tempdir().unwrap();
    let d = corpus(dir.path(), 40);
    let s = Server::start(&d, &["--token", TOKEN]);
    let file = d.join("a0000.md");
    let send = |method: &str, path: &str, body: &str| {
        let (status, answer) = s.send(method, path, body, Some(TOKEN));
        assert_eq!(status, 200, "{method} {path} {body}: {answer}");
        serde_json::from_str::<Value>(&answer).unwrap()
    };
    let pinned = send(
        "POST",
        "/v1/articles/pins",
        r#"{"path": "a0000.md", "targets": ["a0013.md"]}"#,
    );
    assert_eq!(pinned["control"]["pin"][0], "https://example.com/bridge/13");
    assert_eq!(pinned["list_changed"], true);
    let on_disk = fs::read_to_string(&file).unwrap();
    assert!(on_disk.contains("relink:\n  pin:\n    - \"https://example.com/bridge/13\"\n"));
    let now = s.json("/v1/related?path=a0000.md");
    assert_eq!(now["related"][0]["pinned"], true);
    assert_eq!(
        pinned["related"][0]["title"],
        now["related"][0]["entry"]["title"]
    );

    // Block, lock (the list stays), unlock (it follows again), and the same through the CLI.
    let blocked = titles(&now)[1].clone();
    let target = s.json(&format!("/v1/search?q={}&limit=1", enc(&blocked)))["results"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        "POST",
        "/v1/articles/blocks",
        &format!(r#"{{"url": "https://example.com/harbour/0", "targets": ["{target}"]}}"#),
    );
    assert!(!titles(&s.json("/v1/related?path=a0000.md")).contains(&blocked));
    send("POST", "/v1/articles/lock", r#"{"path": "a0000.md"}"#);
    let (status, answer) = s.send(
        "POST",
        "/v1/articles/refresh",
        r#"{"path": "a0000.md"}"#,
        Some(TOKEN),
    );
    assert_eq!(status, 409, "{answer}");
    send("DELETE", "/v1/articles/lock", r#"{"path": "a0000.md"}"#);
    send(
        "DELETE",
        "/v1/articles/blocks",
        &format!(r#"{{"path": "a0000.md", "targets": ["{target}"]}}"#),
    );
    send(
        "DELETE",
        "/v1/articles/pins",
        r#"{"path": "a0000.md", "targets": ["a0013.md"]}"#,
    );
    assert!(!fs::read_to_string(&file).unwrap().contains("relink:"));
    let refreshed = send("POST", "/v1/articles/refresh", r#"{"path": "a0000.md"}"#);
    assert_eq!(refreshed["changed"], false, "the list was already written");
    // What the server wrote is what a full refresh computes.
    let out = relink(&[
        "refresh",
        d.to_str().unwrap(),
        "--full",
        "--dry-run",
        "--quiet",
    ]);
    assert!(
        text(&out.stdout).contains(": 0 would change"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_file_changed_on_disk_is_answered_within_seconds_and_readers_see_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = corpus(dir.path(), 30);
    let s = Server::start(&d, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers all along: every answer is whole, whatever state it came from.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (s.addr, stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) =
                        common::http::request(addr, "GET", "/v1/related?path=a0003.md", None, None);
                    assert_eq!(status, 200, "{body}");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(v["related"].as_array().unwrap().len(), 5);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let edit = |from: &str, to: &str| {
        let f = d.join("a0003.md");
        fs::write(&f, fs::read_to_string(&f).unwrap().replace(from, to)).unwrap();
    };
    let t = Instant::now();
    edit("bridge news 3:", "zeppelin news 3:");
    let seen = |word: &str| {
        let v = s.json(&format!("/v1/search?q={word}&limit=1"));
        v["results"]
            .as_array()
            .unwrap()
            .first()
            .is_some_and(|r| r["title"].as_str().unwrap().contains(word))
    };
    while !seen("zeppelin") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the edit was not picked up in 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("edit answered after {:?}", t.elapsed());
    // A new file, then a removed one.
    fs::write(
        d.join("new.md"),
        "---\ntitle: \"Airship news: the zeppelin returns\"\nwebUrl: \"https://example.com/new\"\n---\n",
    )
    .unwrap();
    let t = Instant::now();
    while s.json("/healthz")["articles"] != 31 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::remove_file(d.join("new.md")).unwrap();
    while s.json("/healthz")["articles"] != 30 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn the_command_line_and_the_server_writing_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = corpus(dir.path(), 60);
    let s = Server::start(&d, &["--token", TOKEN]);
    let p = d.to_str().unwrap().to_string();
    // The command line pins in some files while the server pins in others, and refreshes run.
    let cli = std::thread::spawn(move || {
        for i in 0..6 {
            let file = format!("{p}/a{:04}.md", 30 + i);
            let out = relink(&["pin", &file, &format!("a{:04}.md", 50 + i), "--quiet"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let out = relink(&["refresh", &p, "--quiet"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    });
    for i in 0..6 {
        let body = format!(
            r#"{{"path": "a{:04}.md", "targets": ["a{:04}.md"]}}"#,
            i,
            40 + i
        );
        let (status, answer) = s.send("POST", "/v1/articles/pins", &body, Some(TOKEN));
        assert_eq!(status, 200, "{answer}");
    }
    cli.join().unwrap();
    for (file, pin) in (0..6)
        .map(|i| (i, 40 + i))
        .chain((0..6).map(|i| (30 + i, 50 + i)))
    {
        let text = fs::read_to_string(d.join(format!("a{file:04}.md"))).unwrap();
        let target = fs::read_to_string(d.join(format!("a{pin:04}.md"))).unwrap();
        let url = target.lines().find(|l| l.starts_with("webUrl:")).unwrap();
        let url = url.trim_start_matches("webUrl: ").trim_matches('"');
        assert!(
            text.contains(&format!("  pin:\n    - \"{url}\"\n")),
            "a{file:04}.md lost its pin:\n{text}"
        );
    }
    let out = relink(&[
        "refresh",
        d.to_str().unwrap(),
        "--full",
        "--dry-run",
        "--quiet",
    ]);
    assert!(
        text(&out.stdout).contains(": 0 would change"),
        "{}",
        text(&out.stdout)
    );
}
