//! Reruns that stop at the files' stamps: only when no file, setting or option changed since the
//! last clean refresh. Runs of the binary use the test embedder.

mod common;

use std::fs;
use std::path::Path;

use common::{relink_test_embedder as relink, text};
use relink::testing::archive;

fn refresh(d: &Path) -> String {
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

const SKIPPED: &str = "as the last refresh left them: none read";

#[test]
fn a_rerun_stops_at_the_stamps_only_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 30);
    assert!(!refresh(&d).contains(SKIPPED));
    assert!(refresh(&d).contains(SKIPPED));

    // Same size, modification time set back: the status-change time still tells.
    let file = d.join("a0004.md");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    let edited = fs::read_to_string(&file)
        .unwrap()
        .replacen("harbour news", "harbour NEWS", 1)
        .replacen("drought news", "drought NEWS", 1)
        .replacen("museum news", "museum NEWS", 1)
        .replacen("storm news", "storm NEWS", 1)
        .replacen("bridge news", "bridge NEWS", 1);
    assert_eq!(edited.len(), fs::metadata(&file).unwrap().len() as usize);
    fs::write(&file, &edited).unwrap();
    fs::File::options()
        .append(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = refresh(&d);
    // Only that file is parsed again; the others come from their records.
    assert!(
        out.contains("30 read, 0 skipped; 1 parsed, 29 unchanged"),
        "{out}"
    );
    assert!(refresh(&d).contains(SKIPPED));

    // A new file, then a removed one.
    fs::copy(d.join("a0001.md"), d.join("zz-new.md")).unwrap();
    let out = refresh(&d);
    assert!(
        out.contains("31 read, 0 skipped; 1 parsed, 30 unchanged"),
        "{out}"
    );
    assert!(refresh(&d).contains(SKIPPED));
    fs::remove_file(d.join("zz-new.md")).unwrap();
    assert!(refresh(&d).contains("30 read"));

    // A bad file is reported on every run, never skipped.
    fs::write(d.join("zz-bad.md"), "---\ntitle: [\n---\n").unwrap();
    assert!(refresh(&d).contains("1 skipped"));
    assert!(refresh(&d).contains("1 skipped"));
    fs::remove_file(d.join("zz-bad.md")).unwrap();
    refresh(&d);
    assert!(refresh(&d).contains(SKIPPED));

    // A record's list hash follows the list relink wrote: an edit elsewhere in the story
    // rewrites lists of files taken from their records, and a rerun then finds them current.
    let f = d.join("a0010.md");
    let text = fs::read_to_string(&f)
        .unwrap()
        .replacen("excerpt: \"", "excerpt: \"Breaking: ", 1);
    fs::write(&f, text).unwrap();
    let out = refresh(&d);
    assert!(out.contains("1 parsed, 29 unchanged"), "{out}");
    assert!(refresh(&d).contains(SKIPPED));

    // Lists equal to a full run from scratch.
    let fresh = dir.path().join("fresh");
    common::copy_tree(&d, &fresh);
    fs::remove_dir_all(fresh.join(".relink")).unwrap();
    let out = refresh(&fresh);
    assert!(out.contains("0 changed"), "{out}");
}

/// Random changes to `d` (an archive of `n` made by `archive::generate`, `next` the number of
/// the next new article): some new articles, some edited (title, excerpt, or date and
/// quality), some removed. Returns the new `next`.
fn random_change(d: &Path, n: usize, next: usize, r: &mut archive::Rng) -> usize {
    let stories = archive::stories(n);
    // Up to 1.3% of the archive added, 1.3% edited, 0.5% removed.
    let most = n * 13 / 1000;
    let added = r.below(most);
    for j in 0..added {
        // Half join an existing story, half start their own.
        let story = if j % 2 == 0 {
            stories[r.below(n)]
        } else {
            100_000 + next + j
        };
        let path = archive::file_of(d, next + j);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            path,
            archive::article_text(next + j, story, archive::Edit::None),
        )
        .unwrap();
    }
    for _ in 0..r.below(most) {
        let i = r.below(n);
        let edit = [
            archive::Edit::Title,
            archive::Edit::Excerpt,
            archive::Edit::Date,
            archive::Edit::None,
        ][r.below(4)];
        let path = archive::file_of(d, i);
        if path.exists() {
            fs::write(path, archive::article_text(i, stories[i], edit)).unwrap();
        }
    }
    for _ in 0..r.below(n / 200) {
        let _ = fs::remove_file(archive::file_of(d, r.below(n)));
    }
    // A few editors' pins and blocks, some naming articles that do not exist (yet).
    for _ in 0..r.below(4) {
        let path = archive::file_of(d, r.below(n));
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let name = |i: usize| {
            archive::file_of(Path::new(""), i)
                .to_string_lossy()
                .into_owned()
        };
        let control = relink::article::Control {
            pin: vec![name(r.below(next + 20))],
            block: vec![name(r.below(n)), name(r.below(n))],
            lock: false,
        };
        let control = if r.below(4) == 0 {
            relink::article::Control::default()
        } else {
            control
        };
        if let Some(new) = relink::article::splice_control(&text, &control).unwrap() {
            fs::write(&path, new).unwrap();
        }
    }
    next + added
}

/// The number before `word` on the line starting with `line` of refresh's summary.
fn count(out: &str, line: &str, word: &str) -> usize {
    let l = out
        .lines()
        .find(|l| l.trim_start().starts_with(line))
        .unwrap_or_else(|| panic!("no `{line}` line in {out}"));
    let words: Vec<&str> = l.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.trim_end_matches([',', ':']) == word)
        .and_then(|p| words[p - 1].parse().ok())
        .unwrap_or(0)
}

/// Refreshes an archive of `n` generated articles, then applies `rounds` random changes; after
/// each, the lists kept by the selective refresh must be what a full re-ranking (with the same
/// statistics) computes. Returns the lists kept and ranked over all rounds, and the rounds in
/// which the statistics were renewed.
fn check_random_changes(n: usize, rounds: usize, seed: u64) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("archive");
    archive::generate(&d, n);
    let path = d.to_str().unwrap();
    let out = refresh_with(&d, &["--exact"]);
    assert_eq!(count(&out, "lists", "ranked"), n, "{out}");
    let mut r = archive::Rng(seed);
    let mut next = n;
    let (mut kept_total, mut ranked_total, mut renewed) = (0, 0, 0);
    for round in 0..rounds {
        next = random_change(&d, n, next, &mut r);
        if round % 3 == 1 {
            // A refresh killed part-way first: the next one must still get every list right.
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relink"))
                .args(["refresh", path, "--exact", "--quiet", "--test-embedder"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(r.below(300) as u64));
            let _ = child.kill();
            child.wait().unwrap();
        }
        let out = refresh_with(&d, &["--exact"]);
        eprintln!(
            "round {round}: {}",
            out.lines().find(|l| l.contains("lists")).unwrap()
        );
        let kept = count(&out, "lists", "kept");
        if kept == 0 {
            renewed += 1;
        }
        kept_total += kept;
        ranked_total += count(&out, "lists", "ranked");
        // Every list ranked again, with the same statistics: nothing to change.
        let full = relink(&["refresh", path, "--exact", "--full", "--dry-run", "--quiet"]);
        let full = text(&full.stdout);
        assert_eq!(
            count(&full, "lists", "would"),
            0,
            "round {round}: a full re-ranking changes lists the selective one kept\n{out}\n{full}"
        );
    }
    (kept_total, ranked_total, renewed)
}

#[test]
fn kept_lists_equal_a_full_reranking_after_random_changes() {
    let (kept, ranked, renewed) = check_random_changes(3000, 12, 2024);
    // Most lists were kept, some were ranked again, and the statistics were renewed once the
    // changes passed a tenth of the archive.
    assert!(kept > 4 * ranked, "{kept} kept, {ranked} ranked");
    assert!(renewed >= 1, "the statistics were never renewed");
}

/// The same at archive scale: 20,000 articles (the most searched exactly by default).
#[test]
fn kept_lists_equal_a_full_reranking_at_20000_articles() {
    let (kept, ranked, _) = check_random_changes(20_000, 4, 7);
    assert!(kept > 5 * ranked, "{kept} kept, {ranked} ranked");
}

fn refresh_with(d: &Path, args: &[&str]) -> String {
    let mut all = vec!["refresh", d.to_str().unwrap(), "--quiet"];
    all.extend_from_slice(args);
    let out = relink(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}
