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
