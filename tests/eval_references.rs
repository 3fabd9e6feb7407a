//! `relink eval` never grades relink against the lists it wrote itself. Runs of the binary use
//! the bag-of-words test embedder (`--test-embedder`), so no model is loaded.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use relink::article::Related;

use common::{relink_test_embedder as relink, text};

#[test]
fn lists_relink_wrote_are_not_references_and_hand_edited_ones_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("parent/c"), 40);
    let p = d.to_str().unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Right after a refresh every list is relink's: nothing to score, exit 1, a clear message.
    let out = relink(&["eval", p]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stderr}\n{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("40 of 40 reference lists were written by relink and are not scored"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--labels") && stderr.contains("copy"),
        "{stderr}"
    );

    // An editor rewrites one list by hand: exactly that article is scored.
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    let a = corpus
        .articles
        .iter()
        .position(|a| a.source.path().ends_with("a0007.md"))
        .unwrap();
    let target = corpus
        .articles
        .iter()
        .find(|x| x.source.path().ends_with("a0017.md"))
        .unwrap()
        .to_related();
    let mine: Vec<Related> = vec![target];
    relink::corpus::write_related(&corpus.articles[a], &mine).unwrap();

    // The record lives in the corpus's state: it survives a rename of the folder's parent.
    let moved = dir.path().join("elsewhere");
    fs::rename(dir.path().join("parent"), &moved).unwrap();
    let d = moved.join("c");
    let p = d.to_str().unwrap();
    let out = relink(&["eval", p, "--json"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["articles_scored"], 1, "{stdout}");
    assert_eq!(json["reference_lists"]["human"], 1);
    assert_eq!(json["reference_lists"]["written_by_relink"], 39);
    assert_eq!(json["reference_lists"]["empty"], 0);
    let out = relink(&["eval", p]);
    assert!(
        text(&out.stdout).contains("reference lists: 1 by hand (scored), 39 written by relink"),
        "{}",
        text(&out.stdout)
    );
}

/// Files relink creates for the user get the mode the umask gives, like any program's output.
#[test]
fn the_report_gets_the_umask_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    // Hand-made references, so there is something to score.
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    let target = corpus.articles[10].to_related();
    relink::corpus::write_related(&corpus.articles[0], &[target]).unwrap();
    let report = dir.path().join("report.html");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec '{}' eval '{}' --test-embedder --report '{}'",
            env!("CARGO_BIN_EXE_relink"),
            d.display(),
            report.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = fs::metadata(&report).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

/// A record of written lists that is lost, emptied or cut short, while relink's other state
/// says it refreshed the corpus, makes eval refuse (exit 2) rather than grade relink's own
/// lists; a refresh of the whole folder records them again.
#[test]
fn a_lost_or_damaged_record_is_refused_and_a_refresh_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 30);
    let p = d.to_str().unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record = d.join(".relink/written-lists.tsv");
    let whole = fs::read_to_string(&record).unwrap();
    let cut: String = whole.lines().take(12).map(|l| format!("{l}\n")).collect();
    for (damage, says) in [
        (Some(String::new()), "is damaged: it is empty"),
        (
            Some(cut),
            "is damaged: it holds 11 lines that do not match its header",
        ),
        (None, "is missing, though"),
    ] {
        match &damage {
            Some(text) => fs::write(&record, text).unwrap(),
            None => fs::remove_file(&record).unwrap(),
        }
        let out = relink(&["eval", p]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{stderr}\n{}",
            text(&out.stdout)
        );
        assert!(
            stderr.contains("written-lists.tsv") && stderr.contains(says),
            "{stderr}"
        );
        assert!(stderr.contains("relink refresh"), "{stderr}");
        assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));

        // The refresh that follows (nothing else changed) records every list again, and eval
        // is back to knowing them all as relink's.
        let out = relink(&["refresh", p]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("rebuilt from the lists"), "{stderr}");
        let out = relink(&["eval", p]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("30 of 30 reference lists were written by relink"),
            "{stderr}"
        );
    }
    // A refresh of one article keeps the record marked incomplete: eval still refuses.
    fs::write(&record, "").unwrap();
    let one = d.join("a0003.md");
    let out = relink(&["refresh", p, "--only", one.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("incomplete"),
        "{}",
        text(&out.stderr)
    );
    let out = relink(&["eval", p]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// `--report` writes a new file or replaces a regular one, and nothing else: not a FIFO, a
/// socket, a folder, a symbolic link, a file of relink's state folder (its lock among them), nor
/// an article of the corpus. Each is refused before anything is evaluated, and left as it was.
#[test]
fn a_report_never_replaces_what_is_not_a_regular_file_of_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    let target = corpus.articles[10].to_related();
    relink::corpus::write_related(&corpus.articles[0], &[target]).unwrap();
    let p = d.to_str().unwrap();
    // The state folder in the corpus, as after a refresh.
    fs::create_dir(d.join(".relink")).unwrap();
    assert!(relink(&["eval", p]).status.success());

    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let elsewhere = dir.path().join("elsewhere.html");
    fs::write(&elsewhere, "mine").unwrap();
    let link = dir.path().join("link.html");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    let lock = d.join(".relink/lock");
    let article = d.join("a0004.md");
    let article_before = fs::read(&article).unwrap();
    for (path, says) in [
        (&fifo, "a FIFO"),
        (&socket, "a socket"),
        (&folder, "a folder"),
        (&link, "a symbolic link"),
        (&lock, "inside relink's state folder"),
        (&d.join(".relink/new.html"), "inside relink's state folder"),
        (&article, "a file of the corpus"),
    ] {
        let out = relink(&["eval", p, "--report", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(stderr.contains(says), "{}: {stderr}", path.display());
        assert!(stderr.contains("--report"), "{stderr}");
    }
    let kind = |p: &std::path::Path| fs::symlink_metadata(p).unwrap().file_type();
    use std::os::unix::fs::FileTypeExt;
    assert!(kind(&fifo).is_fifo());
    assert!(kind(&socket).is_socket());
    assert!(kind(&link).is_symlink());
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "mine");
    assert!(!d.join(".relink/new.html").exists());
    assert_eq!(fs::read(&article).unwrap(), article_before);
    // A regular file of the user's is replaced by the report.
    let out = relink(&["eval", p, "--report", elsewhere.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(fs::read_to_string(&elsewhere)
        .unwrap()
        .starts_with("<!doctype html>"));
}

/// Cut-offs stop where `--top` stops: a huge `--k` is refused at once.
#[test]
fn eval_cut_offs_are_capped_like_top() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 10);
    let out = relink(&["eval", d.to_str().unwrap(), "--k", "5,100000"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--k 100000: out of range: cut-offs go from 1 to 1000"),
        "{stderr}"
    );
    assert!(!d.join(".relink").exists(), "nothing was read or created");
}
