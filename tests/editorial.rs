//! Pins, blocks and locks kept in the files, and the corpus rules of relink.toml, through
//! `relink pin|block|lock`, refresh, related and eval. Runs of the binary use the test embedder.

mod common;

use std::fs;
use std::path::Path;

use common::{relink_test_embedder as relink, text};
use relink::article::{parse_article, Source};

fn ok(args: &[&str]) -> String {
    let out = relink(args);
    assert!(
        out.status.success(),
        "relink {args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The titles of the list a file holds.
fn list_of(file: &Path) -> Vec<String> {
    let a = parse_article(
        &fs::read_to_string(file).unwrap(),
        Source::File(file.into()),
    )
    .unwrap();
    a.related
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.title)
        .collect()
}

fn title_of(file: &Path) -> String {
    parse_article(
        &fs::read_to_string(file).unwrap(),
        Source::File(file.into()),
    )
    .unwrap()
    .title
}

/// The file without its `relink:` and `related:` blocks: what no command may change.
fn rest_of(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with("relink:") || line.starts_with("related:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.starts_with('-')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
    }
    out
}

#[test]
fn pins_lead_blocks_keep_out_and_a_lock_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 40);
    let p = d.to_str().unwrap();
    ok(&["refresh", p, "--quiet"]);
    let file = d.join("a0000.md");
    let rest = rest_of(&file);
    let before = list_of(&file);
    assert_eq!(before.len(), 5);

    // Pin an article of another story, by path, then one by URL: they open the list, in order.
    let out = ok(&[
        "pin",
        file.to_str().unwrap(),
        "a0013.md",
        "https://example.com/museum/5",
        "--quiet",
    ]);
    assert!(
        out.contains("pinned https://example.com/bridge/13, https://example.com/museum/5"),
        "{out}"
    );
    assert!(out.contains("1 ranked: 1 changed"), "{out}");
    let list = list_of(&file);
    assert_eq!(list[0], title_of(&d.join("a0013.md")));
    assert_eq!(list[1], title_of(&d.join("a0005.md")));
    assert_eq!(&list[2..], &before[..3]);
    assert_eq!(
        rest_of(&file),
        rest,
        "only the relink: and related: blocks change"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["related", file.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(json["related"][0]["pinned"], true);
    assert_eq!(json["related"][2]["pinned"], false);

    // Block the list's best ranked entry: it leaves, the next one enters.
    let best = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|x| x == "md") && title_of(f) == list[2])
        .unwrap();
    ok(&[
        "block",
        file.to_str().unwrap(),
        best.to_str().unwrap(),
        "--quiet",
    ]);
    let list = list_of(&file);
    assert!(!list.contains(&title_of(&best)), "{list:?}");
    assert_eq!(&list[2..], &before[1..4]);
    // A full refresh agrees with what the commands wrote.
    let out = ok(&["refresh", p, "--full", "--dry-run", "--quiet"]);
    assert!(out.contains(": 0 would change"), "{out}");

    // Lock it: a new article that would enter its list does not.
    ok(&["lock", file.to_str().unwrap(), "--quiet"]);
    let locked = fs::read(&file).unwrap();
    fs::write(
        d.join("a0100.md"),
        fs::read_to_string(d.join("a0020.md"))
            .unwrap()
            .replace("news 20", "news 100")
            .replace("/harbour/20", "/harbour/100"),
    )
    .unwrap();
    let out = ok(&["refresh", p, "--quiet"]);
    assert!(out.contains("(1 locked)"), "{out}");
    assert_eq!(fs::read(&file).unwrap(), locked);
    let out = ok(&["related", file.to_str().unwrap()]);
    assert!(
        out.contains("(locked: refresh keeps the list its file holds)"),
        "{out}"
    );
    // eval reports the lock.
    let labels = dir.path().join("labels.tsv");
    let lines: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "md"))
        .map(|f| {
            let topic = title_of(&f).split(' ').next().unwrap().to_string();
            format!("{}\t{topic}", f.file_name().unwrap().to_str().unwrap())
        })
        .collect();
    fs::write(&labels, lines.join("\n")).unwrap();
    let out = ok(&["eval", p, "--labels", labels.to_str().unwrap()]);
    assert!(
        out.contains("editorial: 1 lists locked, 1 with pins"),
        "{out}"
    );

    // Unlock: the list is ranked and written again, with the newcomer.
    ok(&["unlock", file.to_str().unwrap(), "--quiet"]);
    let list = list_of(&file);
    assert!(list.contains(&title_of(&d.join("a0100.md"))), "{list:?}");

    // Unpin and unblock everything: the relink: map goes, the list is relink's own again.
    ok(&[
        "unpin",
        file.to_str().unwrap(),
        "a0013.md",
        "https://example.com/museum/5",
        "--quiet",
    ]);
    let best_name = best.file_name().unwrap().to_str().unwrap();
    ok(&["unblock", file.to_str().unwrap(), best_name, "--quiet"]);
    assert!(!fs::read_to_string(&file).unwrap().contains("relink:"));
    let out = ok(&["refresh", p, "--full", "--dry-run", "--quiet"]);
    assert!(out.contains(": 0 would change"), "{out}");
    assert_eq!(rest_of(&file), rest);
}

#[test]
fn bad_targets_and_bad_maps() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 20);
    let p = d.to_str().unwrap();
    ok(&["refresh", p, "--quiet"]);
    let file = d.join("a0001.md");
    let before = fs::read(&file).unwrap();

    // A command naming no article: refused, nothing written.
    let out = relink(&["pin", file.to_str().unwrap(), "no-such.md", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no-such.md: no article of"),
        "{}",
        text(&out.stderr)
    );
    let out = relink(&["block", file.to_str().unwrap(), "a0001.md", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is the article itself"));
    let out = relink(&["unpin", file.to_str().unwrap(), "a0002.md", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not pinned"));
    assert_eq!(fs::read(&file).unwrap(), before);

    // A target written by hand that names no article: reported with file and line, ignored.
    let edited = String::from_utf8(before.clone()).unwrap().replacen(
        "provider:",
        "relink:\n  pin:\n    - \"https://example.com/gone\"\n    - a0005.md\nprovider:",
        1,
    );
    fs::write(&file, &edited).unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    let line = edited.lines().position(|l| l == "relink:").unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "a0001.md:{line}: relink.pin https://example.com/gone: no article of the corpus has this URL or path; ignored"
        )),
        "{stderr}"
    );
    assert_eq!(list_of(&file)[0], title_of(&d.join("a0005.md")));
    // Reported again on the next run (no stamp short-circuit hides it).
    assert!(text(&relink(&["refresh", p, "--quiet"]).stderr).contains("https://example.com/gone"));

    // The missing target appears: the list picks it up at once.
    fs::write(
        d.join("gone.md"),
        "---\ntitle: \"A late arrival\"\nwebUrl: \"https://example.com/gone\"\n---\n",
    )
    .unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert!(
        !text(&out.stderr).contains("no article"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        &list_of(&file)[..2],
        ["A late arrival", &title_of(&d.join("a0005.md"))]
    );

    // A misspelt key: the file is reported with its line and left alone.
    let typo = edited.replacen("  pin:", "  lokc: true\n  pin:", 1);
    fs::write(&file, &typo).unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "a0001.md:{line}: `relink` has an unknown key `lokc`"
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), typo);
}

#[test]
fn corpus_rules_block_domains_urls_and_old_articles() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 60);
    let p = d.to_str().unwrap();
    fs::write(
        d.join("relink.toml"),
        "block-domains = [\"p3.example\"]\nblock-urls = [\"https://example.com/harbour/10\"]\nmax-age-days = 5\n",
    )
    .unwrap();
    ok(&["refresh", p, "--quiet"]);
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    let by_title: std::collections::HashMap<&str, &relink::article::Article> = corpus
        .articles
        .iter()
        .map(|a| (a.title.as_str(), a))
        .collect();
    let mut entries = 0;
    for a in &corpus.articles {
        for r in a.related.as_deref().unwrap_or_default() {
            entries += 1;
            let target = by_title[r.title.as_str()];
            let domain = target.provider.as_ref().unwrap().domain.as_deref();
            assert_ne!(domain, Some("p3.example"), "{}", a.display_path());
            assert_ne!(
                target.web_url.as_deref(),
                Some("https://example.com/harbour/10")
            );
            let age = a.published_date_time.unwrap() - target.published_date_time.unwrap();
            assert!(
                age <= chrono::Duration::days(5),
                "{}: {age}",
                a.display_path()
            );
        }
    }
    assert!(entries > 100, "{entries}");
    // Without the rules, those articles are recommended: the rules did the work.
    fs::remove_file(d.join("relink.toml")).unwrap();
    let out = ok(&["refresh", p, "--dry-run", "--quiet"]);
    assert!(out.contains("p3") || out.contains("would change"), "{out}");
    assert!(!out.contains(": 0 would change"), "{out}");
}

#[test]
fn a_crlf_file_keeps_its_line_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::story_corpus(&dir.path().join("c"), 12);
    let file = d.join("a0003.md");
    let crlf = fs::read_to_string(&file).unwrap().replace('\n', "\r\n");
    fs::write(&file, &crlf).unwrap();
    let p = d.to_str().unwrap();
    ok(&["refresh", p, "--quiet"]);
    ok(&["pin", file.to_str().unwrap(), "a0008.md", "--quiet"]);
    ok(&["lock", file.to_str().unwrap(), "--quiet"]);
    let now = fs::read_to_string(&file).unwrap();
    assert!(
        now.contains(
            "relink:\r\n  pin:\r\n    - \"https://example.com/festival/8\"\r\n  lock: true\r\n"
        ),
        "{now}"
    );
    assert_eq!(now.matches('\n').count(), now.matches("\r\n").count());
}
