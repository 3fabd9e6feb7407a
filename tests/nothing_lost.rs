//! What a hostile user tried: concurrent editors and writers, other owners, links out of the
//! folder, hard links, leftovers of killed runs, damaged state, FIFOs, bad options. Runs of the
//! binary use the bag-of-words test embedder (`--test-embedder`), so no model is loaded.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{relink_test_embedder as relink, text};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Runs relink with a deadline: a hang is a failure, not a stuck test.
fn relink_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(args)
        .arg("--test-embedder")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("relink {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Item 1: an appender writing to article bodies while refreshes rewrite the lists loses nothing.
#[test]
fn edits_made_while_relink_writes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 240);
    let stop = AtomicBool::new(false);
    // What the refreshes said: a file they could not write safely is named there.
    let mut said = String::new();
    let appended = std::thread::scope(|s| {
        let appender = s.spawn(|| {
            let mut lines = Vec::new();
            let mut i = 0usize;
            // Paced, so the appends spread over the refreshes' write phases, and bounded: at
            // most 20 s or 100,000 lines.
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(20) {
                let line = format!("appended line {i}\n");
                let path = d.join(format!("a{:04}.md", (i * 7) % 240));
                let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
                f.write_all(line.as_bytes()).unwrap();
                lines.push((path, line));
                i += 1;
                if i >= 100_000 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            lines
        });
        // Lists of alternating length, so that every run rewrites every file.
        for k in ["3", "4", "3", "4", "3", "4"] {
            let out = relink(&["refresh", d.to_str().unwrap(), "--quiet", "--top", k]);
            let stderr = text(&out.stderr);
            assert!(
                out.status.code() == Some(0) || out.status.code() == Some(1),
                "{stderr}"
            );
            said.push_str(&stderr);
        }
        stop.store(true, Ordering::Relaxed);
        appender.join().unwrap()
    });
    assert!(appended.len() > 100, "the appender barely ran");
    eprintln!("{} lines appended during six refreshes", appended.len());
    let mut lost = 0;
    for (path, line) in &appended {
        if !fs::read_to_string(path).unwrap().contains(line.as_str()) {
            lost += 1;
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} appended lines lost; the refreshes said:\n{said}",
        appended.len()
    );
    // And every file still parses with a list.
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    assert!(corpus.errors.is_empty(), "{:?}", corpus.errors);
}

/// Item 2: one writer at a time; `--no-wait` exits 2 naming the holder; without it, the second
/// run waits and then goes on.
#[test]
fn a_second_writer_waits_or_exits_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let lock = relink::fsutil::FolderLock::acquire(
        &d.join(".relink"),
        "relink refresh (test)",
        false,
        &mut |_| {},
    )
    .unwrap()
    .unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--no-wait"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())) && stderr.contains("--no-wait"),
        "{stderr}"
    );
    let before = common::snapshot(&d);
    let child = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(["refresh", d.to_str().unwrap(), "--test-embedder"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        common::snapshot(&d),
        before,
        "wrote while the lock was held"
    );
    drop(lock);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting for"), "{stderr}");
    assert_ne!(common::snapshot(&d), before);
}

/// Item 3, as root: a file of another user keeps its owner, group and mode.
#[test]
fn owner_group_and_mode_are_kept() {
    if !is_root() {
        common::skip("changing a file's owner needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let file = d.join("a0003.md");
    std::os::unix::fs::chown(&file, Some(65534), Some(65533)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::read(&file).unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = fs::metadata(&file).unwrap();
    assert_ne!(fs::read(&file).unwrap(), before, "the list was not written");
    assert_eq!((meta.uid(), meta.gid()), (65534, 65533));
    assert_eq!(meta.mode() & 0o7777, 0o600);
}

/// Item 4: a link out of the folder is read but its file is never written, and no temporary
/// file appears beside it; a link inside the folder is not a second article.
#[test]
fn a_symbolic_link_never_leads_a_write_out_of_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let outside_dir = dir.path().join("elsewhere");
    common::story_corpus(&outside_dir, 3);
    let outside = outside_dir.join("a0001.md");
    let before = fs::read(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, d.join("zz_out.md")).unwrap();
    std::os::unix::fs::symlink(d.join("a0002.md"), d.join("zz_in.md")).unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("21 read"), "{stdout}");
    assert!(
        stderr.contains("zz_out.md") && stderr.contains("outside"),
        "{stderr}"
    );
    assert_eq!(fs::read(&outside).unwrap(), before);
    assert_eq!(fs::read_dir(&outside_dir).unwrap().count(), 3);
    assert!(fs::symlink_metadata(d.join("zz_out.md"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Item 5: a file with another hard link is reported, not split.
#[test]
fn hard_links_are_reported_not_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let other = dir.path().join("other-name.md");
    fs::hard_link(d.join("a0004.md"), &other).unwrap();
    let before = fs::read(&other).unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a0004.md: has 2 hard links"), "{stderr}");
    assert_eq!(fs::read(&other).unwrap(), before);
    assert_eq!(fs::read(d.join("a0004.md")).unwrap(), before);
}

/// Item 6: temporary files of a killed run are removed by the next one; other files are not.
#[test]
fn leftover_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    fs::create_dir_all(d.join(".relink")).unwrap();
    let prefix = relink::fsutil::TEMP_PREFIX;
    for p in [
        d.join(format!("{prefix}a1B2c3")),
        d.join(".relink").join(format!("{prefix}x9Y8z7")),
    ] {
        fs::write(p, "half a file").unwrap();
    }
    fs::write(d.join(".tmp123456"), "not relink's").unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names = |p: &Path| -> Vec<String> {
        fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    assert!(names(&d).is_empty(), "{:?}", names(&d));
    assert!(names(&d.join(".relink")).is_empty());
    assert!(d.join(".tmp123456").exists());
}

/// Item 7: a damaged or truncated graph is rebuilt, never searched; one whose recorded
/// checksum was made to match its damage is refused by its own checks, without a crash.
#[test]
fn a_damaged_graph_dump_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 60);
    let p = d.to_str().unwrap();
    let out = relink(&["refresh", p, "--quiet", "--search", "hnsw"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let graph = d.join(".relink/index.graph");
    let keys = d.join(".relink/index.keys");
    let good_graph = fs::read(&graph).unwrap();
    let good_keys = fs::read(&keys).unwrap();
    // The point count (bytes 24..32 of the header) made huge, and index.id told so.
    let mut huge = good_graph.clone();
    huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    let record_for = |bytes: &[u8]| {
        let id = fs::read_to_string(d.join(".relink/index.id")).unwrap();
        let (head, rest) = id.split_once("index.graph ").unwrap();
        let keys_line = rest.split_once('\n').unwrap().1;
        format!(
            "{head}index.graph {} {:016x}\n{keys_line}",
            bytes.len(),
            xxhash_rust::xxh3::xxh3_64(bytes)
        )
    };
    let damages: Vec<(PathBuf, Vec<u8>)> = vec![
        // Same size, bytes overwritten with large numbers.
        (graph.clone(), {
            let mut g = good_graph.clone();
            for b in g.iter_mut().skip(8).step_by(5) {
                *b = 0xff;
            }
            g
        }),
        (graph.clone(), good_graph[..good_graph.len() / 2].to_vec()),
        (graph.clone(), Vec::new()),
        (keys.clone(), good_keys[..good_keys.len() / 2].to_vec()),
        (d.join(".relink/index.id"), record_for(&huge).into_bytes()),
    ];
    // A touched article makes each run read the corpus and open the graph (an untouched folder
    // is answered from the files' stamps alone).
    let touch = || {
        fs::File::options()
            .append(true)
            .open(d.join("a0000.md"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap()
    };
    for (path, bytes) in damages {
        if path.ends_with("index.id") {
            fs::write(&graph, &huge).unwrap();
        }
        fs::write(&path, &bytes).unwrap();
        touch();
        let out = relink(&["refresh", p, "--search", "hnsw"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
        assert!(
            stdout.contains("search     HNSW over 60"),
            "not rebuilt: {stdout}"
        );
        touch();
        let out = relink(&["refresh", p, "--search", "hnsw"]);
        assert!(text(&out.stdout).contains("graph kept from the last run"));
    }
}

/// Item 8: a FIFO as the article, as relink.toml or as the cache is an error, not a hang.
#[test]
fn fifos_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let limit = Duration::from_secs(30);
    let fifo = dir.path().join("x.md");
    mkfifo(&fifo);
    let out = relink_within(&["refresh", fifo.to_str().unwrap()], limit);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );

    let d = common::story_corpus(&dir.path().join("c"), 10);
    mkfifo(&d.join("relink.toml"));
    let out = relink_within(&["refresh", d.to_str().unwrap()], limit);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("relink.toml") && stderr.contains("not a regular file"),
        "{stderr}"
    );
    fs::remove_file(d.join("relink.toml")).unwrap();

    fs::create_dir_all(d.join(".relink")).unwrap();
    mkfifo(&d.join(".relink/embeddings.bin"));
    let out = relink_within(&["refresh", d.to_str().unwrap()], limit);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("embeddings.bin") && stderr.contains("not a regular file"),
        "{stderr}"
    );
}

/// Item 10: out-of-range options are refused with the option's name and range, from the
/// command line and from relink.toml.
#[test]
fn out_of_range_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 10);
    let p = d.to_str().unwrap();
    let before = common::snapshot(&d);
    for (args, expect) in [
        (vec!["--pool", "18446744073709551615"], "--pool"),
        (vec!["--pool", "0"], "--pool 0"),
        (vec!["--top", "0"], "--top 0"),
        (vec!["--lexical-weight", "NaN"], "--lexical-weight NaN"),
        (vec!["--quality-weight", "inf"], "--quality-weight inf"),
        (vec!["--half-life-after=-3"], "--half-life-after -3"),
        (vec!["--batch-size", "0"], "--batch-size 0"),
    ] {
        let mut all = vec!["refresh", p];
        all.extend(args);
        let out = relink(&all);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(
            stderr.contains(expect) && stderr.contains("between"),
            "{all:?}: {stderr}"
        );
    }
    fs::write(d.join("relink.toml"), "pool = 0\n").unwrap();
    let out = relink(&["refresh", p]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("relink.toml") && stderr.contains("pool = 0"),
        "{stderr}"
    );
    fs::write(d.join("relink.toml"), "undated-factor = nan\n").unwrap();
    assert_eq!(relink(&["refresh", p]).status.code(), Some(2));
    fs::remove_file(d.join("relink.toml")).unwrap();
    assert_eq!(common::snapshot(&d), before);
    assert!(!d.join(".relink").exists(), "a refused run created .relink");
}

/// Item 11: a lone argument that looks like a file name and names no file is an error.
#[test]
fn related_of_a_missing_file_is_an_error_unless_text_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 10);
    let out = relink(&["related", "typo.md", "--corpus", d.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("typo.md: no such file") && stderr.contains("--text"),
        "{stderr}"
    );
    let out = relink(&[
        "related",
        "harbour.md",
        "--text",
        "--corpus",
        d.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = relink(&[
        "related",
        "the harbour story",
        "--corpus",
        d.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("harbour news"));
}

/// Item 12: an empty folder leaves no `.relink`; an error's OS message is not repeated; a
/// state folder that cannot be written stops the run before any embedding.
#[test]
fn failures_leave_no_trace_and_say_things_once() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = relink(&["refresh", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!empty.join(".relink").exists());

    let d = common::story_corpus(&dir.path().join("c"), 10);
    let blocker = dir.path().join("a-file");
    fs::write(&blocker, "").unwrap();
    let state = blocker.join("state");
    let out = relink(&[
        "refresh",
        d.to_str().unwrap(),
        "--cache",
        state.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let os = "Not a directory";
    assert_eq!(stderr.matches(os).count(), 1, "{stderr}");
    assert!(!stderr.contains("embedded"), "{stderr}");
}

/// Item 13: an oversized excerpt is cut in the entries that link to it, with a warning.
#[test]
fn an_oversized_excerpt_is_not_copied_into_every_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 30);
    let big = format!(
        "---\ntitle: \"harbour news 999: the harbour story goes on\"\nexcerpt: \"{}\"\npublishedDateTime: 2023-03-02T10:00:00Z\n---\n",
        "harbour story words ".repeat(20_000)
    );
    fs::write(d.join("big.md"), &big).unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("big.md: the excerpt is 400000 bytes"),
        "{stderr}"
    );
    let mut linking = 0;
    for e in fs::read_dir(&d).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") && !path.ends_with("big.md") {
            let len = fs::metadata(&path).unwrap().len();
            assert!(len < 20_000, "{} is {len} bytes", path.display());
            if fs::read_to_string(&path)
                .unwrap()
                .contains("harbour news 999")
            {
                linking += 1;
            }
        }
    }
    assert!(linking > 0, "no list links to the big article");
}

/// Item 14: a JSON Lines file with a BOM reads from line 1, and a rewritten line keeps its
/// other bytes, duplicate keys included.
#[test]
fn json_lines_keep_their_bom_and_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let lines = [
        "\u{feff}{\"title\": \"harbour news one\", \"excerpt\": \"the harbour\", \"tag\": 1, \"tag\": 2}",
        "{\"title\":\"harbour news two\",\"excerpt\":\"the harbour again\"}",
        "{\"title\":\"harbour news three\" , \"excerpt\":\"harbour\\u0020once more\"}",
    ];
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = relink(&["refresh", path.to_str().unwrap(), "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("3 read, 0 skipped"), "{stdout}");
    let written = fs::read_to_string(&path).unwrap();
    for (old, new) in lines.iter().zip(written.lines()) {
        let kept = &old[..old.len() - 1];
        assert!(new.starts_with(kept), "{new}");
        assert!(new.contains(",\"related\":[{"), "{new}");
    }
    assert!(written.starts_with('\u{feff}'));
    let out = relink(&["refresh", path.to_str().unwrap(), "--quiet"]);
    assert!(text(&out.stdout).contains("0 changed"));
}
