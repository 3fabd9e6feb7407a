//! Writes as an unprivileged user: a file that user could not write is never replaced, even
//! though the folder would let a rename replace it. This test switches the process's effective
//! user, so it lives alone in its own test binary; it needs root to do that and says it is
//! skipped otherwise.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use relink::article::Related;
use relink::corpus::{read_article, write_related, WriteOutcome};

const NOBODY: u32 = 65534;

#[test]
fn files_the_user_could_not_write_are_never_replaced() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("switching to an unprivileged user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("c");
    fs::create_dir(&d).unwrap();
    // A folder anyone may write: a rename there could replace any file in it.
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let text = "---\ntitle: \"A\"\n---\nbody\n";
    let roots = d.join("root-owned.md");
    let read_only = d.join("read-only.md");
    let own = d.join("own.md");
    for p in [&roots, &read_only, &own] {
        fs::write(p, text).unwrap();
    }
    fs::set_permissions(&roots, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&read_only, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
    let articles: Vec<_> = [&roots, &read_only, &own]
        .iter()
        .map(|p| read_article(p).unwrap())
        .collect();
    let entry = Related {
        title: "Elsewhere".into(),
        ..Related::default()
    };

    // SAFETY: plain system calls; the ids are switched back below.
    unsafe {
        assert_eq!(libc::setegid(NOBODY), 0);
        assert_eq!(libc::seteuid(NOBODY), 0);
    }
    let results: Vec<_> = articles
        .iter()
        .map(|a| write_related(a, std::slice::from_ref(&entry)))
        .collect();
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::seteuid(0), 0);
        assert_eq!(libc::setegid(0), 0);
    }

    for (result, path) in results[..2].iter().zip([&roots, &read_only]) {
        let err = result.as_ref().unwrap_err();
        assert!(err.reason.contains("permission denied"), "{err}");
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            text,
            "{}",
            path.display()
        );
    }
    assert_eq!(results[2].as_ref().unwrap(), &WriteOutcome::Changed);
    assert!(fs::read_to_string(&own).unwrap().contains("Elsewhere"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&own).unwrap().uid(), NOBODY);
    assert_eq!(fs::metadata(&roots).unwrap().uid(), 0);
}
