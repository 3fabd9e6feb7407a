//! `relink embed --stdin`, the first worker command, through the binary (test embedder).

use std::io::Write;
use std::process::{Command, Stdio};

fn embed(input: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(["embed", "--stdin", "--test-embedder"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn embed_reads_lines_names_bad_ones_and_keeps_a_cache() {
    let (code, out, err) = embed(
        "{\"title\": \"Storm hits the coast\", \"webUrl\": \"https://x/a\"}\n{oops\n{\"title\": \"Harbour reopens\", \"key\": \"k2\"}\n",
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("relink: stdin:2: invalid JSON"), "{err}");
    let keys: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys, ["https://x/a", "k2"]);
    // Deterministic: the same input, the same output.
    let (_, again, _) = embed(
        "{\"title\": \"Storm hits the coast\", \"webUrl\": \"https://x/a\"}\n{oops\n{\"title\": \"Harbour reopens\", \"key\": \"k2\"}\n",
        &[],
    );
    assert_eq!(out, again);
    // Empty input: empty output, status 0.
    let (code, out, _) = embed("", &[]);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    // A cache: the second run embeds nothing.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let (_, first, err) = embed("{\"title\": \"One\"}\n", &["--cache", cache]);
    assert!(err.contains("1 embedded, 0 from the cache"), "{err}");
    let (_, second, err) = embed("{\"title\": \"One\"}\n", &["--cache", cache]);
    assert!(err.contains("0 embedded, 1 from the cache"), "{err}");
    assert_eq!(first, second);
}
