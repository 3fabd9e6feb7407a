//! Reading and rewriting real article files, and files built to be broken.
//!
//! The real corpora live in `../shared` (or wherever `RELINK_SHARED` points); when they are not
//! there the tests that need them say so and pass, so the crate still tests on its own.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rayon::prelude::*;
use relink::article::{
    parse_article, related_block_span, render_related_block, splice_control, splice_related,
    Article, Control, Image, Provider, Related, Source,
};
use relink::corpus::{read_article, read_corpus, write_jsonl, write_related, Format, WriteOutcome};

const CORPORA: [(&str, usize); 3] = [
    ("diablo4", 1611),
    ("powerapps", 674),
    ("power-apps-crlf", 192),
];
const SEED: &str = "seed/000_6487b44b07e2c8c7.txt";

use common::shared;

fn line_end_of(text: &str) -> &'static str {
    if text.starts_with("---\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// Copies every corpus and the seed into a fresh temporary folder, which writing tests may change.
/// It is in memory where the system offers it: every write syncs its file, and thousands of syncs
/// to a disk would make this test slow without testing anything more.
fn copy_corpora(shared: &Path) -> tempfile::TempDir {
    let memory = Path::new("/dev/shm");
    let temp = if memory.is_dir() {
        tempfile::tempdir_in(memory).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    for (name, _) in CORPORA {
        let to = temp.path().join(name);
        fs::create_dir(&to).unwrap();
        for entry in fs::read_dir(shared.join("corpora").join(name)).unwrap() {
            let entry = entry.unwrap();
            fs::write(to.join(entry.file_name()), fs::read(entry.path()).unwrap()).unwrap();
        }
    }
    fs::create_dir(temp.path().join("seed")).unwrap();
    fs::write(temp.path().join(SEED), fs::read(shared.join(SEED)).unwrap()).unwrap();
    temp
}

fn find<'a>(articles: &'a [Article], file_name: &str) -> &'a Article {
    articles
        .iter()
        .find(|a| a.source.path().file_name().unwrap() == file_name)
        .unwrap_or_else(|| panic!("{file_name} not read"))
}

#[test]
fn every_corpus_file_parses() {
    let Some(shared) = shared() else { return };
    let started = Instant::now();
    let mut all = Vec::new();
    for (name, count) in CORPORA {
        let corpus = read_corpus(&shared.join("corpora").join(name)).unwrap();
        assert_eq!(corpus.format, Format::Folder);
        assert!(corpus.errors.is_empty(), "{name}: {:?}", corpus.errors);
        assert_eq!(corpus.articles.len(), count, "{name}");
        let paths: Vec<_> = corpus.articles.iter().map(|a| a.source.path()).collect();
        assert!(
            paths.windows(2).all(|w| w[0] < w[1]),
            "{name} is sorted by path"
        );
        all.push(corpus);
    }
    let seed = read_corpus(&shared.join(SEED)).unwrap();
    assert!(seed.errors.is_empty(), "{:?}", seed.errors);
    assert_eq!(seed.articles[0].related.as_ref().map(Vec::len), Some(4));
    println!("read 2,478 files in {:?}", started.elapsed());

    let diablo = &all[0].articles;
    let with_lists = diablo.iter().filter(|a| a.related.is_some()).count();
    let links: usize = diablo
        .iter()
        .filter_map(|a| a.related.as_ref())
        .map(Vec::len)
        .sum();
    assert_eq!((with_lists, links), (969, 5315));

    // `\"` inside a quoted title.
    let leak = find(
        diablo,
        "2018-11-22-leak-diablo-4-embrace-the-darkness-blizzcon-gameplay-demo-teaser-announcement-intended.md",
    );
    assert_eq!(
        leak.title,
        "LEAK: Diablo 4, \"Embrace the Darkness,\" BlizzCon Gameplay Demo & Teaser Announcement Intended"
    );

    // A value containing `---` does not close the front matter.
    let soda = find(
        diablo,
        "2019-11-01-sodapoppin-reacts-to-diablo-4-cinematicannouncement-with-chat.md",
    );
    assert!(soda
        .excerpt
        .as_deref()
        .unwrap()
        .contains(" -------------------------------------------- "));
    assert!(soda.extra.contains_key("secured"));

    // A video: no webUrl, escaped HTML in featuredContent, unquoted timestamp with seconds.
    let video = find(
        diablo,
        "2016-10-06-blizzard-sound-of-silence-announcement-diablo-4-blizzcon-2016-parody.md",
    );
    assert_eq!(video.kind.as_deref(), Some("video"));
    assert_eq!(video.web_url, None);
    assert_eq!(video.quality, None);
    let featured = video.extra["featuredContent"].as_str().unwrap();
    assert!(featured.starts_with("<iframe width=\"800\" height=\"500\""));
    assert_eq!(
        video.published_date_time,
        Some(Utc.with_ymd_and_hms(2016, 10, 6, 2, 47, 31).unwrap())
    );
    assert_eq!(
        video.text(),
        format!("{}. {}", video.title, video.excerpt.as_deref().unwrap())
    );

    // A null item in `topics:`, and a provider with more than a name and a domain.
    let unveiled = find(diablo, "2019-11-01-diablo-iv-unveiled.md");
    assert_eq!(unveiled.topics, vec![None, Some("Diablo 4".to_string())]);
    assert_eq!(
        unveiled.provider,
        Some(Provider {
            name: Some("Blizzard".into()),
            domain: Some("blizzard.com".into())
        })
    );

    // CRLF files: no `\r` left on any plain value.
    let crlf: Vec<&Article> = all[2]
        .articles
        .iter()
        .filter(|a| {
            fs::read_to_string(a.source.path())
                .unwrap()
                .starts_with("---\r\n")
        })
        .collect();
    assert_eq!(crlf.len(), 57);
    for article in &crlf {
        let provider = article.provider.as_ref().unwrap();
        let values = [
            Some(&article.title),
            article.web_url.as_ref(),
            article.kind.as_ref(),
            article.category.as_ref(),
            provider.name.as_ref(),
            provider.domain.as_ref(),
        ];
        for value in values.into_iter().flatten() {
            assert!(
                !value.contains('\r'),
                "{}: {value:?}",
                article.display_path()
            );
        }
        assert!(article.published_date_time.is_some());
        assert!(article.quality.is_some());
    }
    let first = find(
        &all[2].articles,
        "2019-08-19-microsoft-power-apps-2019-release-wave-2-overview.md",
    );
    assert_eq!(first.category.as_deref(), Some("news"));
    assert!(first.extra["secured"].as_str().unwrap().ends_with("=="));
}

/// Rendering the list a real file holds gives back its block byte for byte. (Splicing it back is
/// checked by `rewriting_every_corpus_file`, which restores each list and compares the files.)
#[test]
fn stored_related_blocks_render_byte_for_byte() {
    let Some(shared) = shared() else { return };
    let started = Instant::now();
    let mut paths: Vec<PathBuf> = fs::read_dir(shared.join("corpora/diablo4"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.push(shared.join(SEED));
    let blocks: Vec<Result<(), String>> = paths
        .par_iter()
        .filter_map(|path| {
            let text = fs::read_to_string(path).unwrap();
            let article = parse_article(&text, Source::File(path.clone())).unwrap();
            let list = article.related?;
            let span = related_block_span(&text).unwrap().unwrap();
            let rendered = render_related_block(&list, line_end_of(&text));
            Some(if rendered == text[span] {
                Ok(())
            } else {
                Err(path.display().to_string())
            })
        })
        .collect();
    let mismatches: Vec<&String> = blocks.iter().filter_map(|b| b.as_ref().err()).collect();
    assert_eq!(blocks.len(), 970, "969 diablo4 lists and the seed's");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    println!(
        "{} related blocks reproduced in {:?}",
        blocks.len(),
        started.elapsed()
    );
}

#[test]
fn rewriting_every_corpus_file() {
    let Some(shared) = shared() else { return };
    let started = Instant::now();
    let temp = copy_corpora(&shared);
    let corpus = read_corpus(temp.path()).unwrap();
    assert!(corpus.errors.is_empty(), "{:?}", corpus.errors);
    let articles = &corpus.articles;
    assert_eq!(articles.len(), 2478);

    articles
        .par_iter()
        .enumerate()
        .for_each(|(index, article)| {
            let path = article.source.path();
            let before = fs::read(path).unwrap();
            let mtime = fs::metadata(path).unwrap().modified().unwrap();
            let own = article.related.clone().unwrap_or_default();

            // Its own list (or none): not a byte, not the modification time.
            assert_eq!(
                write_related(article, &own).unwrap(),
                WriteOutcome::Unchanged,
                "{}",
                article.display_path()
            );
            assert_eq!(fs::read(path).unwrap(), before);
            assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);

            // A different list: only the block changes, and it reads back exactly.
            let mut list: Vec<Related> = [1, 7]
                .iter()
                .map(|step| articles[(index + step) % articles.len()].to_related())
                .collect();
            list.extend(own.iter().rev().skip(1).cloned());
            assert_eq!(
                write_related(article, &list).unwrap(),
                WriteOutcome::Changed
            );
            let old = String::from_utf8(before.clone()).unwrap();
            let new = fs::read_to_string(path).unwrap();
            let line_end = line_end_of(&old);
            let block = render_related_block(&list, line_end);
            let expected = match related_block_span(&old).unwrap() {
                Some(span) => format!("{}{block}{}", &old[..span.start], &old[span.end..]),
                None => {
                    let at = old.find(&format!("{line_end}secured:")).unwrap() + line_end.len();
                    format!("{}{block}{line_end}{}", &old[..at], &old[at..])
                }
            };
            assert!(
                new == expected,
                "{}: unexpected bytes",
                article.display_path()
            );
            if line_end == "\r\n" {
                assert_eq!(new.matches('\n').count(), new.matches("\r\n").count());
            }
            let back = read_article(path).unwrap();
            assert_eq!(back.related.as_ref(), Some(&list));
            let mut same = back.clone();
            same.related = article.related.clone();
            same.content_hash = article.content_hash;
            same.stamp = article.stamp;
            same.related_hash = article.related_hash;
            assert_eq!(&same, article, "other fields read the same");

            // And back again: a file that had a list returns to its original bytes.
            if article.related.is_some() {
                assert_eq!(write_related(&back, &own).unwrap(), WriteOutcome::Changed);
                assert_eq!(
                    fs::read(path).unwrap(),
                    before,
                    "{}",
                    article.display_path()
                );
            }
        });
    println!("rewrote 2,478 files in {:?}", started.elapsed());
}

#[test]
fn a_relink_map_in_every_corpus_file() {
    let Some(shared) = shared() else { return };
    let temp = copy_corpora(&shared);
    let corpus = read_corpus(temp.path()).unwrap();
    let articles = &corpus.articles;
    let with_targets = Control {
        pin: vec![
            "https://example.com/a \"quoted\" #1".into(),
            "sub/b.md".into(),
        ],
        block: vec!["https://example.com/c".into()],
        lock: true,
    };
    articles.par_iter().for_each(|article| {
        let path = article.source.path();
        let old = fs::read_to_string(path).unwrap();
        assert_eq!(splice_control(&old, &Control::default()).unwrap(), None);
        let new = splice_control(&old, &with_targets).unwrap().unwrap();
        // The block goes right before `related:` (or `secured:`): every other byte is kept.
        let line_end = line_end_of(&old);
        let at = match related_block_span(&old).unwrap() {
            Some(span) => span.start,
            None => old.find(&format!("{line_end}secured:")).unwrap() + line_end.len(),
        };
        let block = new[at..]
            .split(&format!("{line_end}related:"))
            .next()
            .unwrap();
        assert!(block.starts_with("relink:"), "{}", article.display_path());
        assert_eq!(&new[..at], &old[..at]);
        assert!(
            new[at..].ends_with(&old[at..]),
            "{}",
            article.display_path()
        );
        if line_end == "\r\n" {
            assert_eq!(new.matches('\n').count(), new.matches("\r\n").count());
        }
        let back = parse_article(&new, article.source.clone()).unwrap();
        assert_eq!(back.control, with_targets);
        assert_eq!(back.related, article.related);
        // Setting the same again changes nothing; taking it away gives the original bytes.
        assert_eq!(splice_control(&new, &with_targets).unwrap(), None);
        assert_eq!(
            splice_control(&new, &Control::default())
                .unwrap()
                .as_deref(),
            Some(old.as_str()),
            "{}",
            article.display_path()
        );
    });
}

/// Takes every permission from `path`, and says whether reading it now fails: it does not for
/// root, which reads anything, and then there is no unreadable file to report.
#[cfg(unix)]
fn deny_reading(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o000)).unwrap();
    fs::read(path).is_err()
}

#[cfg(not(unix))]
fn deny_reading(_: &Path) -> bool {
    false
}

#[test]
fn broken_files_are_reported_and_left_alone() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let good = "---\ntitle: \"Good\"\n\nsecured: \"x\"\n---\n";
    fs::write(dir.join("good-a.md"), good).unwrap();
    fs::write(dir.join("good-b.md"), good.replace("Good", "Also good")).unwrap();
    let broken: Vec<(&str, &[u8], Option<usize>, &str)> = vec![
        (
            "no-front-matter.md",
            b"title: x\n",
            Some(1),
            "no front matter",
        ),
        (
            "unclosed.md",
            b"---\ntitle: \"x\"\n",
            Some(1),
            "front matter is not closed",
        ),
        (
            "invalid-yaml.md",
            b"---\ntitle: \"x\"\nquality: 3\n  heat: 4\npublished: true\n---\n",
            Some(4),
            "invalid YAML",
        ),
        (
            "title-list.md",
            b"---\ncategory: news\ntitle:\n  - x\n---\n",
            Some(3),
            "`title` is not a string",
        ),
        (
            "title-missing.md",
            b"---\ncategory: news\n---\n",
            None,
            "`title` is missing",
        ),
        ("empty.md", b"", None, "empty file"),
        (
            "bad-utf8.md",
            b"---\ncategory: news\ntitle: \"\xff\"\n---\n",
            Some(3),
            "invalid UTF-8",
        ),
    ];
    for (name, bytes, _, _) in &broken {
        fs::write(dir.join(name), bytes).unwrap();
    }
    let unreadable = dir.join("unreadable.md");
    fs::write(&unreadable, good).unwrap();
    let denied = deny_reading(&unreadable);
    let originals: BTreeMap<PathBuf, Vec<u8>> = broken
        .iter()
        .map(|(name, bytes, _, _)| (dir.join(name), bytes.to_vec()))
        .collect();

    let corpus = read_corpus(dir).unwrap();
    let titles: Vec<&str> = corpus.articles.iter().map(|a| a.title.as_str()).collect();
    let mut expected_titles = vec!["Good", "Also good"];
    if !denied {
        expected_titles.push("Good");
    }
    assert_eq!(titles, expected_titles);
    let mut expected_errors = broken.len();
    if denied {
        expected_errors += 1;
        let error = corpus.errors.iter().find(|e| e.path == unreadable).unwrap();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: ", unreadable.display())),
            "{error}"
        );
    }
    assert_eq!(corpus.errors.len(), expected_errors, "{:#?}", corpus.errors);
    for (name, _, line, reason) in &broken {
        let path = dir.join(name);
        let error = corpus
            .errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{name} not reported"));
        assert_eq!(error.line, *line, "{error}");
        assert!(error.reason.starts_with(reason), "{error}");
        let shown = error.to_string();
        assert!(shown.starts_with(&path.display().to_string()), "{shown}");
        if let Some(line) = line {
            assert!(shown.contains(&format!(":{line}: ")), "{shown}");
        }
    }

    // A write pass: the good files change; writing to a broken file fails and touches nothing.
    let entry = Related {
        title: "Elsewhere".into(),
        ..Related::default()
    };
    for article in &corpus.articles {
        assert_eq!(
            write_related(article, std::slice::from_ref(&entry)).unwrap(),
            WriteOutcome::Changed
        );
    }
    let template = &corpus.articles[0];
    for (path, bytes) in &originals {
        let mut pretend = template.clone();
        pretend.source = Source::File(path.clone());
        pretend.content_hash = xxhash_rust::xxh3::xxh3_64(bytes);
        assert!(
            write_related(&pretend, std::slice::from_ref(&entry)).is_err(),
            "{}",
            path.display()
        );
        assert_eq!(
            &fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn json_lines_round_trip() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("corpus.jsonl");
    let lines = [
        r#"{"title":"One","publishedDateTime":"2021-05-10T07:01:00Z","related":[{"title":"Two"}],"quality":39}"#,
        r#"{"quality": 7, "title": "Two", "provider": {"name": "Forbes", "domain": "forbes.com"}}"#,
        "",
        "{not json",
        r#"{"title":"Three","topics":[null,"AI"]}"#,
        r#"["not an object"]"#,
    ];
    let text = format!("{}\r\n{}\n", lines[..5].join("\n"), lines[5]);
    fs::write(&path, &text).unwrap();

    let corpus = read_corpus(&path).unwrap();
    assert_eq!(corpus.format, Format::JsonLines);
    let found: Vec<(String, Option<usize>)> = corpus
        .articles
        .iter()
        .map(|a| (a.title.clone(), a.source.line()))
        .collect();
    assert_eq!(
        found,
        [
            ("One".into(), Some(1)),
            ("Two".into(), Some(2)),
            ("Three".into(), Some(5))
        ]
    );
    let bad: Vec<(Option<usize>, &str)> = corpus
        .errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].0, Some(4));
    assert!(bad[0].1.starts_with("invalid JSON"), "{}", bad[0].1);
    assert_eq!(bad[1], (Some(6), "not a JSON object"));
    assert_eq!(
        corpus.errors[0].to_string(),
        format!("{}:4: {}", path.display(), corpus.errors[0].reason)
    );
    let two = &corpus.articles[1];
    assert_eq!(two.display_path(), format!("{}:2", path.display()));
    assert_eq!(
        corpus.articles[2].topics,
        vec![None, Some("AI".to_string())]
    );

    // Line 1 already holds this list, line 2 gets one, line 5 gets an empty one (it had none).
    let mut entry = corpus.articles[0].to_related();
    entry.images = Some(vec![Image {
        url: Some("https://i/".into()),
        width: Some(10),
        ..Image::default()
    }]);
    let stored = corpus.articles[0].related.clone().unwrap();
    let updates = vec![
        (1, stored.clone()),
        (2, vec![entry.clone()]),
        (5, Vec::new()),
    ];
    assert_eq!(write_jsonl(&path, &updates).unwrap(), WriteOutcome::Changed);
    let written = fs::read_to_string(&path).unwrap();
    let new_lines: Vec<&str> = written.split('\n').collect();
    let old_lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(new_lines.len(), old_lines.len());
    for index in [0, 2, 3, 4, 5, 6] {
        assert_eq!(new_lines[index], old_lines[index], "line {}", index + 1);
    }
    assert_eq!(
        new_lines[1],
        r#"{"quality": 7, "title": "Two", "provider": {"name": "Forbes", "domain": "forbes.com"},"related":[{"title":"One","publishedDateTime":"2021-05-10T07:01:00Z","quality":39,"images":[{"url":"https://i/","width":10}]}]}"#
    );
    let again = read_corpus(&path).unwrap();
    assert_eq!(again.articles[1].related, Some(vec![entry.clone()]));

    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let same = vec![(2, vec![entry]), (1, stored), (5, Vec::new())];
    assert_eq!(write_jsonl(&path, &same).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(fs::read_to_string(&path).unwrap(), written);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    let err = write_jsonl(&path, &[(4, Vec::new())]).unwrap_err();
    assert_eq!(err.line, Some(4));
    let err = write_jsonl(&path, &[(99, Vec::new())]).unwrap_err();
    assert_eq!(err.line, Some(99));
    let err = write_related(&corpus.articles[0], &[]).unwrap_err();
    assert_eq!(err.line, Some(1));
}

/// Strings built from the pieces that break naive YAML writers.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\t".to_string()),
        Just(": ".to_string()),
        Just(" #".to_string()),
        Just("#".to_string()),
        Just("- ".to_string()),
        Just("-".to_string()),
        Just("---".to_string()),
        Just("true".to_string()),
        Just("123".to_string()),
        Just("1.5e3".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just(" ".to_string()),
        Just("'".to_string()),
        Just("[{".to_string()),
        Just("&*!|>%@`".to_string()),
        Just("2021-05-11".to_string()),
        Just("’é😀".to_string()),
        Just("\u{85}\u{a0}\u{2028}\u{feff}".to_string()),
        "[a-zA-Z0-9 .,]{1,12}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn entry() -> impl Strategy<Value = Related> {
    let image = (
        proptest::option::of(tricky_text()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(url, width, height, is_cached)| Image {
            url,
            width,
            height,
            is_cached,
            extra: BTreeMap::new(),
        });
    let provider = (
        proptest::option::of(tricky_text()),
        proptest::option::of(tricky_text()),
    )
        .prop_map(|(name, domain)| Provider { name, domain });
    let time = (
        0i64..4_000_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).unwrap());
    (
        (
            tricky_text(),
            proptest::option::of(tricky_text()),
            proptest::option::of(time),
            proptest::option::of(tricky_text()),
            proptest::option::of(tricky_text()),
            proptest::option::of(tricky_text()),
        ),
        (
            proptest::option::of(tricky_text()),
            proptest::option::of(provider),
            proptest::option::of(any::<i64>()),
            proptest::option::of(prop::collection::vec(image, 0..3)),
        ),
    )
        .prop_map(
            |((title, excerpt, time, web, amp, cdn), (kind, provider, quality, images))| Related {
                title,
                excerpt,
                published_date_time: time,
                web_url: web,
                amp_web_url: amp,
                cdn_amp_web_url: cdn,
                kind,
                provider,
                quality,
                images,
                extra: BTreeMap::new(),
            },
        )
}

const PROPTEST_FILE: &str = "---\ncategory: news\ntitle: \"Base\"\nexcerpt: \"Text\"\ntopics:\n  - AI\n\nrelated:\n  - title: \"Old\"\n    quality: 1\n\nsecured: \"abc\"\n---\n\nBody with\n---\nlines.\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_entries_round_trip(entries in prop::collection::vec(entry(), 0..4), crlf in any::<bool>()) {
        let original = if crlf {
            PROPTEST_FILE.replace('\n', "\r\n")
        } else {
            PROPTEST_FILE.to_string()
        };
        let spliced = splice_related(&original, &entries).unwrap();
        let span = related_block_span(&original).unwrap().unwrap();
        let new_span = related_block_span(&spliced).unwrap().unwrap();
        prop_assert_eq!(&spliced[..new_span.start], &original[..span.start]);
        prop_assert_eq!(&spliced[new_span.end..], &original[span.end..]);
        let back = parse_article(&spliced, Source::File("p.md".into())).unwrap();
        prop_assert_eq!(back.related.unwrap_or_default(), entries);
        prop_assert_eq!(back.title, "Base");
    }

    #[test]
    fn any_relink_map_round_trips(
        pin in prop::collection::vec(tricky_text(), 0..3),
        block in prop::collection::vec(tricky_text(), 0..3),
        lock in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let original = if crlf {
            PROPTEST_FILE.replace('\n', "\r\n")
        } else {
            PROPTEST_FILE.to_string()
        };
        // What the reader keeps of a target: trimmed, non-blank, each once.
        let clean = |v: Vec<String>| {
            let mut out: Vec<String> = Vec::new();
            for t in v {
                let t = t.trim().to_string();
                if !t.is_empty() && !out.contains(&t) {
                    out.push(t);
                }
            }
            out
        };
        let control = Control { pin: clean(pin), block: clean(block), lock };
        let spliced = splice_control(&original, &control).unwrap();
        let Some(spliced) = spliced else {
            prop_assert!(control.is_empty());
            return Ok(());
        };
        let back = parse_article(&spliced, Source::File("p.md".into())).unwrap();
        prop_assert_eq!(&back.control, &control);
        prop_assert_eq!(back.related.unwrap().len(), 1);
        prop_assert_eq!(splice_control(&spliced, &Control::default()).unwrap(), Some(original));
    }
}
