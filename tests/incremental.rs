//! Reruns that stop at the files' stamps: only when no file, setting or option changed since the
//! last clean refresh. Runs of the binary use the test embedder.

mod common;

use std::fs;
use std::path::Path;

use common::{relink_test_embedder as relink, text};

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
