//! The worker commands (export, embed, stats, rank) and apply, through the binary (test
//! embedder): a shard ranks as the whole corpus does, and apply writes what refresh writes.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
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

/// Runs relink with the test embedder, `input` on stdin; returns status, stdout, stderr.
fn worker(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(args)
        .arg("--test-embedder")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// The articles of `folder` as `relink export` writes them, each with its vector: what a job
/// hands `relink rank`.
fn shard_lines(folder: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(["export", folder.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let articles = common::text(&out.stdout);
    let (code, vectors, err) = worker(&["embed", "--stdin", "--quiet"], &articles);
    assert_eq!(code, Some(0), "{err}");
    let vectors: BTreeMap<String, serde_json::Value> = vectors
        .lines()
        .map(|l| {
            let v = json(l);
            (v["key"].as_str().unwrap().to_string(), v["vector"].clone())
        })
        .collect();
    articles
        .lines()
        .map(|l| {
            let mut a = json(l);
            let key = a["key"].as_str().unwrap().to_string();
            a["vector"] = vectors[&key].clone();
            a
        })
        .collect()
}

fn stats_file(dir: &Path, articles: &[serde_json::Value]) -> String {
    let input: String = articles.iter().map(|a| format!("{a}\n")).collect();
    let path = dir.join("stats.json");
    let (code, _, err) = worker(&["stats", "--stdin", "-o", path.to_str().unwrap()], &input);
    assert_eq!(code, Some(0), "{err}");
    path.to_str().unwrap().to_string()
}

/// Lists (key -> line) of `relink rank` over `shard`.
fn rank(stats: &str, shard: &[String], options: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["rank", "--stdin", "--quiet", "--stats", stats];
    args.extend_from_slice(options);
    let (code, out, err) = worker(&args, &shard.join("\n"));
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| (json(l)["key"].as_str().unwrap().to_string(), l.to_string()))
        .collect()
}

#[test]
fn export_stats_rank_and_apply_give_refresh_s_files_whole_and_in_time_shards() {
    let dir = tempfile::tempdir().unwrap();
    let original = common::story_corpus(&dir.path().join("corpus"), 140);
    let articles = shard_lines(&original);
    assert_eq!(articles.len(), 140);
    assert_eq!(articles[3]["seq"], 3);
    assert_eq!(articles[3]["key"], "a0003.md");
    assert!(articles[3]["epoch"].is_i64());
    assert!(articles[3].get("related").is_none());
    let stats = stats_file(dir.path(), &articles);
    let windows: [&[&str]; 2] = [&[], &["--window-before", "3", "--window-after", "5"]];
    for (w, window) in windows.iter().enumerate() {
        // One machine: refresh with exact search.
        let single = common::copy_tree(&original, &dir.path().join(format!("single{w}")));
        let mut args = vec!["refresh", single.to_str().unwrap(), "--search", "exact"];
        args.extend_from_slice(window);
        let out = common::relink_test_embedder(&args);
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        // The whole corpus as one shard.
        let all: Vec<String> = articles.iter().map(|a| a.to_string()).collect();
        let whole = rank(&stats, &all, window);
        assert_eq!(whole.len(), 140);
        // Time shards, as a job cuts them: the queries of four days, and every article the
        // window reaches from them (a day of margin), marked as candidates only.
        if !window.is_empty() {
            let day = |a: &serde_json::Value| a["epoch"].as_i64().unwrap() / 86_400;
            let first = articles.iter().map(day).min().unwrap();
            let mut sharded = BTreeMap::new();
            for start in (first..first + 28).step_by(4) {
                let shard: Vec<String> = articles
                    .iter()
                    .filter(|a| (start - 3 - 1..=start + 3 + 5 + 1).contains(&day(a)))
                    .map(|a| {
                        let mut a = a.clone();
                        a["query"] = ((start..start + 4).contains(&day(&a))).into();
                        a.to_string()
                    })
                    .collect();
                sharded.extend(rank(&stats, &shard, window));
            }
            let differ: Vec<&String> = whole
                .keys()
                .filter(|k| sharded.get(*k) != whole.get(*k))
                .collect();
            assert!(
                differ.is_empty(),
                "time shards rank as the whole corpus: {differ:?}"
            );
            assert_eq!(sharded.len(), whole.len());
        }
        // Apply the lists to a copy: the same files as refresh wrote.
        let applied = common::copy_tree(&original, &dir.path().join(format!("applied{w}")));
        let lists = dir.path().join(format!("lists{w}.jsonl"));
        let text: String = whole.values().map(|l| format!("{l}\n")).collect();
        std::fs::write(&lists, text).unwrap();
        let out = common::relink_test_embedder(&[
            "apply",
            lists.to_str().unwrap(),
            applied.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        assert!(
            common::text(&out.stdout).contains("140 read: 140 changed"),
            "{}",
            common::text(&out.stdout)
        );
        let strip = |s: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
            s.into_iter()
                .filter(|(p, _)| !p.contains(".relink"))
                .collect()
        };
        assert_eq!(
            strip(common::snapshot(&applied)),
            strip(common::snapshot(&single)),
            "window {window:?}"
        );
    }
}

#[test]
fn rank_names_bad_lines_goes_on_and_refuses_foreign_stats() {
    let dir = tempfile::tempdir().unwrap();
    let original = common::story_corpus(&dir.path().join("corpus"), 12);
    let articles = shard_lines(&original);
    let stats = stats_file(dir.path(), &articles);
    let mut no_vector = articles[1].clone();
    no_vector.as_object_mut().unwrap().remove("vector");
    let mut short = articles[2].clone();
    short["vector"] = "AACAPw==".into();
    let input = [
        articles[0].to_string(),
        "{oops".into(),
        no_vector.to_string(),
        short.to_string(),
        articles[0].to_string(),
        articles[3].to_string(),
    ]
    .join("\n");
    let (code, out, err) = worker(&["rank", "--stdin", "--stats", &stats], &input);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("stdin:2: invalid JSON"), "{err}");
    assert!(err.contains("stdin:3: `vector` is missing"), "{err}");
    assert!(err.contains("stdin:4: `vector` is not"), "{err}");
    assert!(
        err.contains("stdin:5: the key a0000.md came before"),
        "{err}"
    );
    let keys: Vec<String> = out
        .lines()
        .map(|l| json(l)["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["a0000.md", "a0003.md"]);
    // Empty input: empty output.
    let (code, out, _) = worker(&["rank", "--stdin", "--stats", &stats], "");
    assert_eq!((code, out.as_str()), (Some(0), ""));
    // Statistics of another model or another relink are refused.
    let text = std::fs::read_to_string(&stats).unwrap();
    for (field, value, says) in [
        (
            "model",
            "another-model",
            "statistics of the model another-model",
        ),
        ("relink", "0.0.1", "written by relink 0.0.1"),
    ] {
        let mut v = json(&text);
        v[field] = value.into();
        let other = dir.path().join(format!("{field}.json"));
        std::fs::write(&other, v.to_string()).unwrap();
        let (code, out, err) = worker(
            &["rank", "--stdin", "--stats", other.to_str().unwrap()],
            &articles[0].to_string(),
        );
        assert_eq!((code, out.as_str()), (Some(2), ""), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, _, err) = worker(&["rank", "--stdin", "--stats", "/nonexistent/s.json"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/s.json"), "{err}");
}

#[test]
fn apply_writes_nothing_from_a_lists_file_that_names_another_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::story_corpus(&dir.path().join("corpus"), 6);
    let before = common::snapshot(&folder);
    let lists = dir.path().join("lists.jsonl");
    std::fs::write(
        &lists,
        "{\"key\": \"a0000.md\", \"related\": [{\"key\": \"a0001.md\"}]}\n{\"key\": \"elsewhere.md\", \"related\": []}\n{\"key\": \"a0002.md\", \"related\": [\"missing.md\"]}\nnot json\n{\"key\": \"a0000.md\", \"related\": []}\n",
    )
    .unwrap();
    let out =
        common::relink_test_embedder(&["apply", lists.to_str().unwrap(), folder.to_str().unwrap()]);
    let err = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lists.jsonl:2: no article elsewhere.md"),
        "{err}"
    );
    assert!(
        err.contains("lists.jsonl:3: no article missing.md"),
        "{err}"
    );
    assert!(err.contains("lists.jsonl:4: invalid JSON"), "{err}");
    assert!(err.contains("lists.jsonl:5: a second list"), "{err}");
    assert!(err.contains("4 bad lines; nothing written"), "{err}");
    assert_eq!(common::snapshot(&folder), before);
    // A good file, one list locked: the other is written, the locked one is not.
    let locked = folder.join("a0001.md");
    let text = std::fs::read_to_string(&locked).unwrap();
    std::fs::write(
        &locked,
        text.replacen("---\n", "---\nrelink:\n  lock: true\n", 1),
    )
    .unwrap();
    std::fs::write(
        &lists,
        "{\"key\": \"a0000.md\", \"related\": [{\"key\": \"a0002.md\"}]}\n{\"key\": \"a0001.md\", \"related\": [\"a0002.md\"]}\n",
    )
    .unwrap();
    let locked_before = std::fs::read(&locked).unwrap();
    let out =
        common::relink_test_embedder(&["apply", lists.to_str().unwrap(), folder.to_str().unwrap()]);
    let said = common::text(&out.stdout);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(
        said.contains("2 read: 1 changed, 1 unchanged (1 locked); 4 articles without a list"),
        "{said}"
    );
    assert_eq!(std::fs::read(&locked).unwrap(), locked_before);
    let written = std::fs::read_to_string(folder.join("a0000.md")).unwrap();
    assert!(written.contains("vaccine news 2"), "{written}");
}

/// Base64 of little-endian f32s, as `relink embed` writes a vector.
fn vector_text(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    relink::worker::base64(&bytes)
}

#[test]
fn rank_refuses_non_finite_vectors_by_line_and_stats_of_another_width_once() {
    let dir = tempfile::tempdir().unwrap();
    let original = common::story_corpus(&dir.path().join("corpus"), 12);
    let articles = shard_lines(&original);
    let stats = stats_file(dir.path(), &articles);
    let width = relink::worker::vector_from_base64(articles[1]["vector"].as_str().unwrap())
        .unwrap()
        .len();
    let mut input = vec![articles[0].to_string()];
    for (bad, at) in [
        (f32::NAN, 5),
        (f32::INFINITY, 0),
        (f32::NEG_INFINITY, width - 1),
    ] {
        let mut a = articles[input.len()].clone();
        let mut v = vec![0.05f32; width];
        v[at] = bad;
        a["vector"] = vector_text(&v).into();
        input.push(a.to_string());
    }
    input.push(articles[4].to_string());
    let (code, out, err) = worker(&["rank", "--stdin", "--stats", &stats], &input.join("\n"));
    assert_eq!(code, Some(1), "{err}");
    for (line, at) in [(2, 5), (3, 0), (4, width - 1)] {
        assert!(
            err.contains(&format!("stdin:{line}: `vector` holds a non-finite value"))
                && err.contains(&format!("at position {at}")),
            "{err}"
        );
    }
    // The lists hold only the good articles, and every score is a number.
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        for e in l["related"].as_array().unwrap() {
            assert!(e["score"].as_f64().is_some_and(f64::is_finite), "{l}");
            assert!(["a0000.md", "a0004.md"].contains(&e["key"].as_str().unwrap()));
        }
    }

    // Statistics of vectors of another width: one clear refusal, not a complaint per line.
    let mut v = json(&std::fs::read_to_string(&stats).unwrap());
    v["dim"] = 8.into();
    let narrow = dir.path().join("narrow.json");
    std::fs::write(&narrow, v.to_string()).unwrap();
    let (code, out, err) = worker(
        &["rank", "--stdin", "--stats", narrow.to_str().unwrap()],
        &input.join("\n"),
    );
    assert_eq!((code, out.as_str()), (Some(2), ""), "{err}");
    assert!(
        err.contains(&format!("statistics of 8-wide vectors")) && err.contains("narrow.json"),
        "{err}"
    );
    assert!(!err.contains("stdin:"), "{err}");
}

#[test]
fn apply_refuses_lists_refresh_could_never_write() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::story_corpus(&dir.path().join("corpus"), 6);
    let before = common::snapshot(&folder);
    let lists = dir.path().join("lists.jsonl");
    let long: Vec<String> = (0..1_001).map(|_| "\"a0001.md\"".to_string()).collect();
    std::fs::write(
        &lists,
        format!(
            "{{\"key\": \"a0000.md\", \"related\": [\"a0001.md\", \"a0000.md\"]}}\n\
             {{\"key\": \"a0001.md\", \"related\": [\"a0002.md\", \"a0003.md\", \"a0002.md\"]}}\n\
             {{\"key\": \"a0002.md\", \"related\": [{}]}}\n\
             {{\"key\": \"a0003.md\", \"related\": [\"a0004.md\"]}}\n",
            long.join(", ")
        ),
    )
    .unwrap();
    let out =
        common::relink_test_embedder(&["apply", lists.to_str().unwrap(), folder.to_str().unwrap()]);
    let err = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lists.jsonl:1: the article is in its own list"),
        "{err}"
    );
    assert!(
        err.contains("lists.jsonl:2: entry 3 repeats an earlier entry"),
        "{err}"
    );
    assert!(
        err.contains("lists.jsonl:3: 1001 entries; a list holds at most 1000"),
        "{err}"
    );
    assert!(err.contains("3 bad lines; nothing written"), "{err}");
    assert_eq!(common::snapshot(&folder), before);
}
