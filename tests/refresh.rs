//! The engine's rules on small hand-made corpora, with the bag-of-words test embedder: what is
//! never recommended, how time and quality weigh, determinism, and the embedding cache.

mod common;

use std::path::Path;

use relink::corpus::read_corpus;
use relink::engine::{EmbedderChoice, Engine, EngineSettings, Timings};
use relink::index::{HnswParams, SearchMode};
use relink::rank::RankOptions;

/// Writes an article file in the seed format.
fn article(
    dir: &Path,
    name: &str,
    title: &str,
    date: &str,
    url: &str,
    provider: &str,
    quality: Option<i64>,
) {
    let quality = quality
        .map(|q| format!("quality: {q}\n"))
        .unwrap_or_default();
    let url = if url.is_empty() {
        String::new()
    } else {
        format!("webUrl: \"{url}\"\n")
    };
    let text = format!(
        "---\ncategory: news\ntitle: \"{title}\"\nexcerpt: \"{title} and more about it.\"\npublishedDateTime: {date}\n{url}type: article\n{quality}\nprovider:\n  name: {provider}\n  domain: {provider}.com\n\nsecured: \"x\"\n---\n"
    );
    std::fs::write(dir.join(name), text).unwrap();
}

fn settings(state: &Path, search: SearchMode) -> EngineSettings {
    EngineSettings {
        embedder: EmbedderChoice::Hash { dim: 256 },
        state_dir: state.to_path_buf(),
        search,
        hnsw: HnswParams::default(),
        show_progress: false,
        rules: Default::default(),
    }
}

fn engine(dir: &Path, search: SearchMode) -> Engine {
    let corpus = read_corpus(dir).unwrap();
    assert!(corpus.errors.is_empty(), "{:?}", corpus.errors);
    Engine::build(
        corpus,
        &settings(&dir.join(".relink"), search),
        Timings::default(),
    )
    .unwrap()
}

fn titles_of(engine: &Engine, i: usize, options: RankOptions) -> Vec<String> {
    engine
        .ranker(options)
        .rank_article(i)
        .into_iter()
        .map(|s| engine.corpus.articles[s.index].title.clone())
        .collect()
}

fn position(engine: &Engine, file: &str) -> usize {
    engine
        .corpus
        .articles
        .iter()
        .position(|a| a.display_path().ends_with(file))
        .unwrap()
}

fn no_time_no_quality() -> RankOptions {
    RankOptions {
        half_life_after: 0.0,
        half_life_before: 0.0,
        quality_weight: 0.0,
        min_similarity: 0.0,
        ..RankOptions::default()
    }
}

#[test]
fn never_itself_its_url_a_copy_or_a_near_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Lilith statue unveiled in Paris museum",
        "2023-06-01T10:00:00Z",
        "https://x.com/a",
        "alpha",
        Some(50),
    );
    // Same URL as a.md, different words: the same article filed twice.
    article(
        d,
        "b.md",
        "Statue of Lilith shown in a Paris museum today",
        "2023-06-01T11:00:00Z",
        "https://www.x.com/a/",
        "beta",
        Some(50),
    );
    // Same title and provider as a.md, no URL.
    article(
        d,
        "c.md",
        "Lilith statue unveiled in Paris museum",
        "2023-06-02T10:00:00Z",
        "",
        "alpha",
        Some(50),
    );
    // Near-duplicate text (syndicated copy) from another provider.
    article(
        d,
        "d.md",
        "Lilith statue unveiled in Paris museum",
        "2023-06-01T12:00:00Z",
        "https://y.com/d",
        "gamma",
        Some(50),
    );
    article(
        d,
        "e.md",
        "Lilith statue crowds gather at Paris museum",
        "2023-06-03T10:00:00Z",
        "https://z.com/e",
        "delta",
        Some(50),
    );
    article(
        d,
        "f.md",
        "Paris museum extends Lilith statue exhibition",
        "2023-06-05T10:00:00Z",
        "https://w.com/f",
        "epsilon",
        Some(50),
    );
    let e = engine(d, SearchMode::Exact);
    let a = position(&e, "a.md");
    // Only the two other articles are left; their order is the ranker's business.
    let mut list = titles_of(&e, a, no_time_no_quality());
    list.sort();
    assert_eq!(
        list,
        [
            "Lilith statue crowds gather at Paris museum",
            "Paris museum extends Lilith statue exhibition"
        ]
    );
}

#[test]
fn near_duplicates_never_share_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Season of blood launches with vampire powers",
        "2023-10-17T10:00:00Z",
        "https://x.com/a",
        "alpha",
        None,
    );
    article(
        d,
        "b.md",
        "Season of blood patch notes vampire powers list",
        "2023-10-18T10:00:00Z",
        "https://x.com/b",
        "beta",
        None,
    );
    // c is a syndicated copy of b.
    article(
        d,
        "c.md",
        "Season of blood patch notes vampire powers list",
        "2023-10-18T11:00:00Z",
        "https://y.com/c",
        "gamma",
        None,
    );
    article(
        d,
        "e.md",
        "Vampire powers ranked for season of blood",
        "2023-10-19T10:00:00Z",
        "https://x.com/e",
        "delta",
        None,
    );
    let e = engine(d, SearchMode::Exact);
    let list = titles_of(&e, position(&e, "a.md"), no_time_no_quality());
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        list.iter().filter(|t| t.contains("patch notes")).count(),
        1,
        "{list:?}"
    );
}

#[test]
fn later_coverage_of_the_same_story_beats_stale_news() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Diablo expansion release date announced",
        "2023-08-01T10:00:00Z",
        "https://x.com/a",
        "alpha",
        Some(50),
    );
    article(
        d,
        "old.md",
        "Diablo expansion release date rumours",
        "2022-01-01T10:00:00Z",
        "https://x.com/old",
        "beta",
        Some(50),
    );
    article(
        d,
        "new.md",
        "Diablo expansion release date rumours confirmed",
        "2023-08-03T10:00:00Z",
        "https://x.com/new",
        "gamma",
        Some(50),
    );
    let e = engine(d, SearchMode::Exact);
    let a = position(&e, "a.md");
    let timed = titles_of(
        &e,
        a,
        RankOptions {
            quality_weight: 0.0,
            lexical_weight: 0.0,
            ..RankOptions::default()
        },
    );
    assert_eq!(timed[0], "Diablo expansion release date rumours confirmed");
    // The stale article is scored far below: its time factor is 0.5^(577/4).
    let list = e.ranker(RankOptions::default()).rank_article(a);
    let stale = list
        .iter()
        .find(|s| e.corpus.articles[s.index].title.ends_with("rumours"));
    assert!(stale.is_none_or(|s| s.time < 1e-6));
}

#[test]
fn undated_articles_get_the_undated_factor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Blizzard patch fixes server queue",
        "2023-08-01T10:00:00Z",
        "https://x.com/a",
        "alpha",
        None,
    );
    std::fs::write(
        d.join("b.md"),
        "---\ntitle: \"Blizzard patch fixes long server queue problems\"\nexcerpt: \"Players in Europe report shorter waits.\"\n---\n",
    )
    .unwrap();
    let e = engine(d, SearchMode::Exact);
    let list = e
        .ranker(RankOptions {
            undated_factor: 0.25,
            ..RankOptions::default()
        })
        .rank_article(position(&e, "a.md"));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].time, 0.25);
    assert_eq!(list[0].quality, 1.0, "no quality counts as the median");
}

#[test]
fn higher_quality_wins_between_equals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Necromancer class revealed for Diablo",
        "2023-08-01T10:00:00Z",
        "https://x.com/a",
        "alpha",
        Some(50),
    );
    article(
        d,
        "low.md",
        "Necromancer class details Diablo",
        "2023-08-02T10:00:00Z",
        "https://x.com/low",
        "beta",
        Some(10),
    );
    article(
        d,
        "high.md",
        "Necromancer class details Diablo",
        "2023-08-02T10:00:00Z",
        "https://x.com/high",
        "gamma",
        Some(90),
    );
    let e = engine(d, SearchMode::Exact);
    // The two candidates have the same text: allow near-duplicates to compare them.
    let keep_copies = RankOptions {
        duplicate: 1.01,
        ..RankOptions::default()
    };
    let list = e
        .ranker(keep_copies.clone())
        .rank_article(position(&e, "a.md"));
    let first = &e.corpus.articles[list[0].index];
    assert!(first.display_path().ends_with("high.md"));
    assert!(list[0].quality > list[1].quality);
    // Without the quality weight, equal scores are ordered by corpus position.
    let list = e
        .ranker(RankOptions {
            quality_weight: 0.0,
            ..keep_copies
        })
        .rank_article(position(&e, "a.md"));
    assert_eq!(list[0].score, list[1].score);
    assert!(list[0].index < list[1].index);
}

#[test]
fn same_provider_can_be_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Rogue class guide for beginners",
        "2023-08-01T10:00:00Z",
        "https://x.com/a",
        "alpha",
        None,
    );
    article(
        d,
        "b.md",
        "Rogue class guide for experts",
        "2023-08-02T10:00:00Z",
        "https://x.com/b",
        "alpha",
        None,
    );
    article(
        d,
        "c.md",
        "Rogue class build guide",
        "2023-08-02T10:00:00Z",
        "https://y.com/c",
        "beta",
        None,
    );
    let e = engine(d, SearchMode::Exact);
    let a = position(&e, "a.md");
    assert_eq!(titles_of(&e, a, RankOptions::default()).len(), 2);
    let only_others = titles_of(
        &e,
        a,
        RankOptions {
            exclude_same_provider: true,
            ..RankOptions::default()
        },
    );
    assert_eq!(only_others, ["Rogue class build guide"]);
}

/// A corpus where one story is told many times over by one provider, and a few other stories
/// touch it: the plain top list is one story from one provider.
fn crowded_corpus(d: &Path) {
    let angles = [
        "victims named",
        "engineers questioned",
        "mayor resigns",
        "traffic diverted",
        "divers search river",
        "steel supplier sued",
        "memorial planned",
        "budget cuts blamed",
    ];
    for (i, angle) in angles.iter().enumerate() {
        article(
            d,
            &format!("s{i}.md"),
            &format!("Bridge collapse inquiry: {angle}"),
            "2023-08-01T10:00:00Z",
            &format!("https://a.com/{i}"),
            "alpha",
            None,
        );
    }
    for (i, t) in [
        "Bridge collapse: engineers warned of cracks",
        "Bridge inspections ordered after collapse",
        "Inquiry into the bridge collapse opens",
    ]
    .iter()
    .enumerate()
    {
        article(
            d,
            &format!("o{i}.md"),
            t,
            "2023-08-01T10:00:00Z",
            &format!("https://p{i}.com/x"),
            &format!("other{i}"),
            None,
        );
    }
}

#[test]
fn diversity_and_a_provider_cap_spread_a_list() {
    let dir = tempfile::tempdir().unwrap();
    crowded_corpus(dir.path());
    let e = engine(dir.path(), SearchMode::Exact);
    let a = position(&e, "s0.md");
    let providers = |o: RankOptions| -> Vec<String> {
        e.ranker(o)
            .rank_article(a)
            .iter()
            .map(|s| {
                let p = e.corpus.articles[s.index].provider.clone().unwrap();
                p.name.unwrap()
            })
            .collect()
    };
    let alpha = |v: &[String]| v.iter().filter(|p| *p == "alpha").count();
    let plain = providers(RankOptions::default());
    assert!(alpha(&plain) >= 4, "{plain:?}");
    // 0 is today's ranking, option for option.
    let zero = RankOptions {
        diversity: 0.0,
        max_per_provider: 0,
        ..RankOptions::default()
    };
    assert_eq!(
        e.ranker(zero).rank_all(),
        e.ranker(RankOptions::default()).rank_all()
    );
    let capped = providers(RankOptions {
        max_per_provider: 2,
        ..RankOptions::default()
    });
    assert_eq!(alpha(&capped), 2, "{capped:?}");
    assert_eq!(capped.len(), 5);
    let diverse = providers(RankOptions {
        diversity: 1.0,
        ..RankOptions::default()
    });
    assert!(
        alpha(&diverse) < alpha(&plain),
        "{diverse:?} against {plain:?}"
    );
    // The first entry is still the best by score.
    assert_eq!(diverse[0], plain[0]);
}

#[test]
fn a_title_match_counts_as_far_as_the_embeddings_agree() {
    let dir = tempfile::tempdir().unwrap();
    crowded_corpus(dir.path());
    let e = engine(dir.path(), SearchMode::Exact);
    let a = position(&e, "s0.md");
    for gate in [0.0f32, 1.0, 2.0] {
        let o = RankOptions {
            lexical_gate: gate,
            ..no_time_no_quality()
        };
        let w = o.lexical_weight;
        let list = e.ranker(o).rank_article(a);
        assert_eq!(list.len(), 5);
        for s in &list {
            assert!(s.lexical > 0.0 && s.cosine > 0.0, "{s:?}");
            let expected = (1.0 - w) * s.cosine + w * s.lexical * s.cosine.powf(gate);
            assert!((s.similarity - expected).abs() < 1e-5, "gate {gate}: {s:?}");
            assert!((s.score - s.similarity).abs() < 1e-6, "{s:?}");
        }
    }
    // The default fusion lies between the embeddings alone and the two added as they are.
    let additive = RankOptions {
        lexical_gate: 0.0,
        ..no_time_no_quality()
    };
    let gated = e.ranker(no_time_no_quality()).rank_article(a);
    let added = e.ranker(additive).rank_article(a);
    assert!(gated[0].similarity < added[0].similarity);
}

/// Lists of every article, as titles.
fn all_lists(e: &Engine) -> Vec<Vec<usize>> {
    e.ranker(RankOptions::default())
        .rank_all()
        .into_iter()
        .map(|l| l.into_iter().map(|s| s.index).collect())
        .collect()
}

#[test]
fn results_are_deterministic_with_the_hnsw_index() {
    let Some(shared) = common::shared() else {
        return;
    };
    let corpus_dir = shared.join("corpora/powerapps");
    let build = || {
        let state = tempfile::tempdir().unwrap();
        let corpus = read_corpus(&corpus_dir).unwrap();
        let e = Engine::build(
            corpus,
            &settings(state.path(), SearchMode::Hnsw),
            Timings::default(),
        )
        .unwrap();
        assert!(e.index.is_hnsw());
        all_lists(&e)
    };
    let first = build();
    assert_eq!(first, build());
    // And the index finds what exact search finds.
    let state = tempfile::tempdir().unwrap();
    let exact = Engine::build(
        read_corpus(&corpus_dir).unwrap(),
        &settings(state.path(), SearchMode::Exact),
        Timings::default(),
    )
    .unwrap();
    let exact_lists = all_lists(&exact);
    let same = first
        .iter()
        .zip(&exact_lists)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same as f64 >= 0.95 * first.len() as f64,
        "{same} of {} lists equal to exact search",
        first.len()
    );
}

#[test]
fn the_cache_is_reused_and_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..5 {
        article(
            d,
            &format!("{i}.md"),
            &format!("Story number {i} about Lilith"),
            "2023-08-01T10:00:00Z",
            &format!("https://x.com/{i}"),
            "alpha",
            None,
        );
    }
    let state = d.join(".relink");
    let build = |choice: EmbedderChoice| {
        let s = EngineSettings {
            embedder: choice,
            ..settings(&state, SearchMode::Exact)
        };
        Engine::build(read_corpus(d).unwrap(), &s, Timings::default()).unwrap()
    };
    let cold = build(EmbedderChoice::Hash { dim: 256 });
    assert_eq!((cold.embed_stats.embedded, cold.embed_stats.cached), (5, 0));
    let warm = build(EmbedderChoice::Hash { dim: 256 });
    assert_eq!((warm.embed_stats.embedded, warm.embed_stats.cached), (0, 5));
    assert!(!warm.embed_stats.model_loaded);
    assert_eq!(cold.index.vectors(), warm.index.vectors());
    // One article edited: only it is embedded again.
    article(
        d,
        "3.md",
        "Story number 3 about Lilith, edited",
        "2023-08-01T10:00:00Z",
        "https://x.com/3",
        "alpha",
        None,
    );
    let edited = build(EmbedderChoice::Hash { dim: 256 });
    assert_eq!(
        (edited.embed_stats.embedded, edited.embed_stats.cached),
        (1, 4)
    );
    // Another model: nothing is reused, and the old cache is reported replaced.
    let other = build(EmbedderChoice::Hash { dim: 128 });
    assert_eq!(other.embed_stats.embedded, 5);
    assert!(other
        .embed_stats
        .cache_note
        .as_deref()
        .unwrap()
        .contains("hash-bow/256"));
}

#[test]
fn refresh_writes_lists_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::copy_tree(&common::seeds(), &dir.path().join("seeds"));
    let run = |dry: bool| {
        let e = engine(&d, SearchMode::Auto);
        let all: Vec<usize> = (0..e.corpus.articles.len()).collect();
        relink::refresh::refresh(&e, &RankOptions::default(), &all, dry, false)
    };
    let before: Vec<(String, Vec<u8>)> = common::snapshot(&d);
    let dry = run(true);
    assert!(!dry.changes.is_empty());
    assert_eq!(common::snapshot(&d), before, "a dry run writes nothing");
    let first = run(false);
    assert_eq!(first.changes.len(), dry.changes.len());
    assert!(first.write_errors.is_empty(), "{:?}", first.write_errors);
    let written = common::snapshot(&d);
    assert_ne!(written, before);
    let mtimes_before = mtimes(&d);
    let second = run(false);
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(common::snapshot(&d), written);
    assert_eq!(mtimes(&d), mtimes_before);
    // Every written list parses back and never names the article itself.
    let corpus = read_corpus(&d).unwrap();
    for a in &corpus.articles {
        let list = a.related.as_deref().unwrap_or(&[]);
        assert!(list.len() <= 5);
        assert!(
            list.iter()
                .all(|r| r.title != a.title || r.web_url != a.web_url),
            "{}",
            a.display_path()
        );
    }
}

fn mtimes(d: &Path) -> Vec<std::time::SystemTime> {
    let mut v: Vec<(String, std::time::SystemTime)> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, t)| t).collect()
}

#[test]
fn a_json_lines_corpus_is_refreshed_in_place_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("articles.jsonl");
    let line = |i: usize, title: &str| {
        format!(
            "{{\"title\":\"{title}\",\"excerpt\":\"{title} in detail.\",\"publishedDateTime\":\"2023-06-0{i}T10:00:00Z\",\"webUrl\":\"https://x.com/{i}\",\"type\":\"article\",\"custom\":{i}}}\n"
        )
    };
    let text = [
        line(1, "Lilith statue unveiled in Paris"),
        line(2, "Crowds visit the Lilith statue in Paris"),
        "\n".to_string(),
        line(3, "Paris extends the Lilith statue exhibition"),
    ]
    .concat();
    std::fs::write(&path, &text).unwrap();
    let run = || {
        let corpus = read_corpus(&path).unwrap();
        assert_eq!(corpus.articles.len(), 3);
        let e = Engine::build(
            corpus,
            &settings(&dir.path().join(".relink"), SearchMode::Exact),
            Timings::default(),
        )
        .unwrap();
        relink::refresh::refresh(&e, &RankOptions::default(), &[0, 1, 2], false, false)
    };
    let first = run();
    assert_eq!(first.changes.len(), 3);
    assert!(first.write_errors.is_empty(), "{:?}", first.write_errors);
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().nth(2), Some(""), "the blank line is kept");
    for l in written.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["related"].as_array().unwrap().len(), 2, "{l}");
        assert!(v["custom"].is_number(), "other fields are kept");
        assert!(l.starts_with("{\"title\""), "field order is kept: {l}");
    }
    let second = run();
    assert!(second.changes.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

#[test]
fn the_hnsw_graph_is_kept_extended_and_masked_and_rebuilt_past_the_limit() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = common::copy_tree(
        &shared.join("corpora/power-apps-crlf"),
        &dir.path().join("c"),
    );
    let state = dir.path().join("state");
    let build_in = |state: &Path| {
        Engine::build(
            read_corpus(&d).unwrap(),
            &settings(state, SearchMode::Hnsw),
            Timings::default(),
        )
        .unwrap()
    };
    let build = || build_in(&state);
    let first = build();
    assert!(first.index.is_hnsw() && !first.graph.kept);
    assert!(state.join("index.graph").is_file() && state.join("index.id").is_file());
    let second = build();
    assert_eq!(
        second.graph,
        relink::index::GraphReuse {
            kept: true,
            added: 0,
            masked: 0
        }
    );
    assert_eq!(all_lists(&first), all_lists(&second));
    // An edited article: its new text is inserted into the kept graph, its old one masked, and
    // the lists are those of a graph built from scratch.
    let mut files: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let text =
        std::fs::read_to_string(&files[0])
            .unwrap()
            .replacen("title: \"", "title: \"Edited: ", 1);
    std::fs::write(&files[0], text).unwrap();
    let edited = build();
    assert_eq!(
        (edited.graph.kept, edited.graph.added, edited.graph.masked),
        (true, 1, 1)
    );
    let fresh = build_in(&dir.path().join("fresh-state"));
    assert!(!fresh.graph.kept);
    assert_eq!(all_lists(&edited), all_lists(&fresh));
    assert_eq!(
        (
            build().graph.kept,
            build().graph.added,
            build().graph.masked
        ),
        (true, 0, 1)
    );
    // A damaged graph file is rebuilt, not trusted.
    std::fs::write(state.join("index.graph"), b"garbage").unwrap();
    assert!(!build().graph.kept);
    assert!(build().graph.kept);
    // A quarter of the articles deleted: more masked than the limit allows, so a rebuild.
    for f in files.iter().take(files.len() / 4) {
        std::fs::remove_file(f).unwrap();
    }
    let after = build();
    assert!(!after.graph.kept, "{:?}", after.graph);
    assert_eq!(build().graph.masked, 0);
}

#[test]
fn free_text_is_ranked_against_the_corpus_without_time_unless_dated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    article(
        d,
        "a.md",
        "Harbour bridge reopens after the storm",
        "2023-01-02T10:00:00Z",
        "https://x.example/a",
        "p1",
        None,
    );
    article(
        d,
        "b.md",
        "Museum opens a new wing",
        "2023-01-03T10:00:00Z",
        "https://x.example/b",
        "p2",
        None,
    );
    article(
        d,
        "c.md",
        "Storm closes the harbour bridge",
        "2021-01-03T10:00:00Z",
        "https://x.example/c",
        "p3",
        None,
    );
    let e = engine(d, SearchMode::Exact);
    let choice = EmbedderChoice::Hash { dim: 256 };
    let list = e
        .rank_text(
            "harbour bridge storm",
            None,
            &RankOptions::default(),
            &choice,
        )
        .unwrap();
    let titles: Vec<&str> = list
        .iter()
        .map(|s| e.corpus.articles[s.index].title.as_str())
        .collect();
    assert!(
        titles.len() >= 2 && !titles.contains(&"Museum opens a new wing"),
        "{titles:?}"
    );
    assert!(
        list.iter().all(|s| s.time == 1.0),
        "undated text weighs no time"
    );
    // Dated: the article published the same day outranks the one two years older.
    let date = chrono::DateTime::parse_from_rfc3339("2023-01-02T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let with_time = e
        .rank_text(
            "harbour bridge storm",
            Some(date),
            &RankOptions::default(),
            &choice,
        )
        .unwrap();
    assert_eq!(
        e.corpus.articles[with_time[0].index].title,
        "Harbour bridge reopens after the storm"
    );
    for s in &with_time {
        if e.corpus.articles[s.index].title == "Storm closes the harbour bridge" {
            assert!(s.time < 0.01, "two years before the text: {}", s.time);
        }
    }
}

/// Above 20,000 articles the graph is built on every core; its neighbours agree with exact
/// search at the recall the README states (0.98 at 10).
#[test]
fn a_parallel_built_graph_agrees_with_exact_search() {
    use relink::embed::TextEmbedder;
    use relink::index::{exact_top_k, recall_at_k, VectorIndex, PARALLEL_BUILD_ABOVE};
    let n = PARALLEL_BUILD_ABOVE + 1_000;
    let words = [
        "harbour",
        "election",
        "vaccine",
        "bridge",
        "drought",
        "museum",
        "merger",
        "storm",
        "festival",
        "satellite",
        "council",
        "budget",
        "river",
        "flood",
        "school",
        "teacher",
        "hospital",
        "court",
        "verdict",
        "forest",
        "harvest",
        "market",
        "inflation",
        "housing",
        "senate",
        "energy",
        "wind",
        "coast",
        "cargo",
        "airline",
        "factory",
        "startup",
        "privacy",
        "concert",
        "novel",
        "stadium",
        "league",
        "marathon",
        "volcano",
        "rocket",
    ];
    let texts: Vec<String> = (0..n)
        .map(|i| {
            // Stories of five articles sharing three words; a word of its own per article,
            // so that no two vectors tie.
            let mut state = (i / 5) as u64;
            let mut w = || words[(relink::index::splitmix64(&mut state) % 40) as usize];
            format!(
                "{} {} {} {} item{i}x",
                w(),
                w(),
                w(),
                words[i % words.len()]
            )
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = relink::testing::HashEmbedder::new(256)
        .embed(&refs)
        .unwrap();
    let index = VectorIndex::build(vectors.clone(), SearchMode::Auto, HnswParams::default());
    assert!(index.is_hnsw());
    let queries: Vec<usize> = (0..n).step_by(n / 500).collect();
    let exact: Vec<_> = queries
        .iter()
        .map(|&q| exact_top_k(&vectors, vectors.row(q), 10))
        .collect();
    let found: Vec<_> = queries
        .iter()
        .map(|&q| index.search(vectors.row(q), 10))
        .collect();
    // Many vectors tie (texts that share the same words): a neighbour found counts when it is
    // as similar as the exact tenth, whichever of the tied rows it is.
    let hits: usize = exact
        .iter()
        .zip(&found)
        .map(|(e, f)| {
            let tenth = e[9].similarity - 1e-6;
            f.iter().filter(|n| n.similarity >= tenth).count().min(10)
        })
        .sum();
    let recall = hits as f64 / (10 * queries.len()) as f64;
    eprintln!("parallel-built graph: recall@10 {recall} against exact search");
    assert!(
        recall >= 0.98,
        "recall@10 {recall} (by row: {})",
        recall_at_k(&queries, &exact, &found, 10)
    );
}

/// BM25's top matches (MaxScore) equal scoring every matching title, on the real corpora.
#[test]
fn lexical_top_k_equals_scoring_every_title_on_real_corpora() {
    let Some(shared) = common::shared() else {
        return;
    };
    for name in ["diablo4", "huffpost"] {
        let corpus = read_corpus(&shared.join("corpora").join(name)).unwrap();
        let titles: Vec<&str> = corpus.articles.iter().map(|a| a.title.as_str()).collect();
        let bm = relink::lexical::Bm25::new(&titles);
        for doc in 0..titles.len() {
            let mut all = bm.scores_for_doc(doc);
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(200);
            all.sort_unstable_by_key(|&(d, _)| d);
            assert_eq!(
                bm.top_k(&bm.doc_terms(doc), 200),
                all,
                "{name} article {doc}"
            );
        }
    }
}
