//! Helpers shared by the integration tests and the benches.
#![allow(dead_code)]

pub mod http;

use std::path::PathBuf;

/// `../shared` beside the repository (or `$RELINK_SHARED`), if present. Tests that need it
/// are skipped where it is absent (a user's clone has no `../shared`), and say so.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("RELINK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")));
    if dir.join("corpora").is_dir() {
        Some(dir)
    } else {
        skip("../shared not found (the real corpora and STS-B)");
        None
    }
}

/// Records that the running test is skipped, and why: printed now, and added to
/// `target/tmp/skipped-tests.txt`, which `make test` counts and prints at the end (a skipped
/// test passes, so cargo's own summary cannot tell it from a real pass).
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("skipped: {test}: {reason}");
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        use std::io::Write;
        let _ = writeln!(f, "{test}\t{reason}");
    }
}

/// The model folder `make test` fetches.
pub fn model_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/all-MiniLM-L6-v2"
    ));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `make test` (or scripts/fetch-deps.sh) to fetch the model",
        dir.display()
    );
    dir
}

/// title + ". " + excerpt of every diablo4 article.
pub fn diablo4_texts() -> Option<Vec<String>> {
    let corpus = relink::corpus::read_corpus(&shared()?.join("corpora/diablo4")).ok()?;
    Some(corpus.articles.iter().map(|a| a.text()).collect())
}

/// Cores this process may use (quoted with every benchmark figure).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every file directly in `d`, by name, with its bytes.
pub fn snapshot(d: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The shipped sample corpus.
pub fn seeds() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds"))
}

/// Copies every file of `from` into `to` (flat or nested), returning `to`.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    to.to_path_buf()
}

/// `n` articles in ten stories: each story's articles share words, so every list has entries.
pub fn story_corpus(dir: &std::path::Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let words = [
        "harbour",
        "election",
        "vaccine",
        "bridge",
        "drought",
        "museum",
        "merger",
        "storm",
        "festival",
        "satellite",
    ];
    for i in 0..n {
        let w = words[i % words.len()];
        let text = format!(
            "---\ntitle: \"{w} news {i}: the {w} story goes on\"\nexcerpt: \"More on the {w} and what it means, part {i}.\"\npublishedDateTime: 2023-03-{:02}T10:00:00Z\nwebUrl: \"https://example.com/{w}/{i}\"\nprovider:\n  name: P{}\n  domain: p{}.example\n---\nBody of article {i}.\n",
            1 + i % 28,
            i % 7,
            i % 7
        );
        std::fs::write(dir.join(format!("a{i:04}.md")), text).unwrap();
    }
    dir.to_path_buf()
}

/// Runs the relink binary with the bag-of-words test embedder (no model is loaded).
pub fn relink_test_embedder(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(args)
        .arg("--test-embedder")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
