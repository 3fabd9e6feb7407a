//! `relink refresh`: rank every article and rewrite the related lists that changed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::article::{Article, Related, Source};
use crate::corpus::{Corpus, ReadError};
use crate::editorial::Editorial;
use crate::engine::{progress_bar, Engine};
use crate::rank::{normalize_title, normalize_url, ListBounds, RankOptions, Scored};
use crate::selective::{self, Counts, Snapshot};

/// What happened to one article's list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Change {
    /// The article's position in the corpus.
    #[serde(skip)]
    pub article: usize,
    /// The file (and line, for JSON Lines).
    pub file: String,
    /// Titles that enter the list.
    pub added: Vec<String>,
    /// Titles that leave it.
    pub removed: Vec<String>,
    /// The order changed, with the same entries.
    pub reordered: bool,
}

/// The outcome of a refresh.
#[derive(Debug, Default)]
pub struct RefreshReport {
    /// Articles whose list was ranked.
    pub refreshed: usize,
    /// Articles whose list was kept from the last refresh: no change since can reach it.
    pub kept: usize,
    /// Lists that differ from the files' (written, or would be with `--dry-run`).
    pub changes: Vec<Change>,
    /// Lists already up to date, locked ones included.
    pub unchanged: usize,
    /// Lists left as the files hold them because their articles are locked.
    pub locked: usize,
    /// Files that could not be written.
    pub write_errors: Vec<ReadError>,
    /// The lists written: article position and [`crate::state::list_hash`] of its new list.
    pub written: Vec<(usize, u64)>,
    /// The files written, by article position: the new file's stamp and the xxh3 of its bytes.
    pub stamps: Vec<(usize, (crate::fsutil::FileStamp, u64))>,
    /// Time per stage: working out which lists to rank, ranking, writing.
    pub timings: crate::engine::Timings,
    /// Lists the files already held as relink ranks them (unlocked, left unchanged): article
    /// position and list hash.
    pub matching: Vec<(usize, u64)>,
    /// Whether every article's list was computed (a refresh of the whole corpus), so that
    /// `written` and `matching` together are every list relink holds in the files.
    pub whole_corpus: bool,
}

/// Picks the articles named by `only` (paths or webUrls); an empty `only` means all of them.
/// Names that match no article are returned as errors.
pub fn select(articles: &[Article], only: &[String]) -> (Vec<usize>, Vec<String>) {
    if only.is_empty() {
        return ((0..articles.len()).collect(), Vec::new());
    }
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    // Each article's path and URLs are looked up once, in maps, so naming every file of a
    // large archive costs one pass over it rather than one per name.
    let mut by_path: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    let mut by_url: HashMap<String, Vec<usize>> = HashMap::new();
    let names_a_path = only.iter().any(|name| Path::new(name).exists());
    for (i, a) in articles.iter().enumerate() {
        if names_a_path {
            if let Source::File(p) = &a.source {
                by_path.entry(canon(p)).or_default().push(i);
            }
        }
        let urls = [a.web_url.as_deref(), a.original_url.as_deref()];
        for url in urls.into_iter().flatten() {
            let list = by_url.entry(normalize_url(url)).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut picked = Vec::new();
    let mut unknown = Vec::new();
    for name in only {
        let before = picked.len();
        if names_a_path {
            if let Some(hits) = by_path.get(&canon(Path::new(name))) {
                picked.extend_from_slice(hits);
            }
        }
        if let Some(hits) = by_url.get(&normalize_url(name)) {
            picked.extend_from_slice(hits);
        }
        if picked.len() == before {
            unknown.push(name.clone());
        }
    }
    picked.sort_unstable();
    picked.dedup();
    (picked, unknown)
}

/// Ranks the `selected` articles and writes their lists (unless `dry_run`).
pub fn refresh(
    engine: &Engine,
    options: &RankOptions,
    selected: &[usize],
    dry_run: bool,
    show_progress: bool,
) -> RefreshReport {
    let ranker = engine.ranker(options.clone());
    let t = std::time::Instant::now();
    let ranked: Vec<(usize, Vec<Scored>)> = if selected.len() == engine.corpus.articles.len() {
        // Every article: one blocked matrix product finds all neighbours at once.
        ranker.rank_all().into_iter().enumerate().collect()
    } else {
        let bar = progress_bar(selected.len(), "rank", show_progress);
        let lists = selected
            .par_iter()
            .map(|&i| {
                let list = ranker.rank_article(i);
                bar.inc(1);
                (i, list)
            })
            .collect();
        bar.finish_and_clear();
        lists
    };
    let refreshed = ranked.len();
    let lists = ranked
        .into_par_iter()
        .map(|(i, list)| (i, list.iter().map(|s| s.index).collect(), None))
        .collect();
    let mut timings = crate::engine::Timings::default();
    timings.add("rank", t);
    let mut report = write_changed(
        &engine.corpus,
        &engine.editorial,
        lists,
        refreshed,
        dry_run,
        show_progress,
    )
    .0;
    timings.0.append(&mut report.timings.0);
    report.timings = timings;
    report
}

/// Refreshes every article's list: with lists kept by the last refresh of the same `settings`
/// (and unless `full`), ranks only those a change since can reach and keeps the others
/// ([`crate::selective`]); else ranks them all. Writes the lists that differ from the files'
/// (unless `dry_run`), and returns the lists to keep for the next refresh.
pub fn refresh_all(
    engine: &Engine,
    options: &RankOptions,
    settings: &str,
    full: bool,
    dry_run: bool,
    show_progress: bool,
) -> (RefreshReport, Snapshot) {
    let ranker = engine.ranker(options.clone());
    let articles = &engine.corpus.articles;
    let kept = engine
        .kept
        .as_ref()
        .filter(|k| engine.stats_kept && !full && k.snapshot.settings == settings);
    let mut timings = crate::engine::Timings::default();
    let t = std::time::Instant::now();
    let plan = kept.and_then(|k| selective::plan(&k.snapshot, &k.matching, engine, &ranker));
    if kept.is_some() {
        timings.add("plan", t);
    }
    let t = std::time::Instant::now();
    // Per article: its list (corpus positions) and bounds, and the counts kept with them.
    type Found = (Vec<usize>, ListBounds, Counts, Option<u64>);
    let mut lists: Vec<Option<Found>> = vec![None; articles.len()];
    let refreshed;
    match (kept, &plan) {
        (Some(k), Some(plan)) => {
            let bar = progress_bar(plan.rerank.len(), "rank", show_progress);
            let ranked: Vec<(usize, (Vec<Scored>, ListBounds))> = plan
                .rerank
                .par_iter()
                .map(|&i| {
                    let out = (i, ranker.rank_article_bounded(i));
                    bar.inc(1);
                    out
                })
                .collect();
            bar.finish_and_clear();
            refreshed = ranked.len();
            for (i, (list, bounds)) in ranked {
                let list = list.iter().map(|s| s.index).collect();
                lists[i] = Some((list, bounds, Counts::default(), None));
            }
            for &(i, counts) in &plan.kept {
                let e = &k.snapshot.entries[k.matching.entry_of[i].expect("kept") as usize];
                let list = e
                    .list
                    .iter()
                    .map(|&t| k.matching.article_of[t as usize].expect("kept entries") as usize)
                    .collect();
                // The same entries as when it was ranked: the same hash.
                lists[i] = Some((list, e.bounds.clone(), counts, Some(e.list_hash)));
            }
        }
        _ => {
            let ranked = ranker.rank_all_bounded();
            refreshed = ranked.len();
            for (i, (list, bounds)) in ranked.into_iter().enumerate() {
                let list = list.iter().map(|s| s.index).collect();
                lists[i] = Some((list, bounds, Counts::default(), None));
            }
        }
    }
    let lists: Vec<Found> = lists
        .into_iter()
        .map(|l| l.expect("every article has its list"))
        .collect();
    timings.add("rank", t);
    let (mut report, hashes) = write_changed(
        &engine.corpus,
        &engine.editorial,
        lists
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.0.clone(), l.3))
            .collect(),
        refreshed,
        dry_run,
        show_progress,
    );
    let t = std::time::Instant::now();
    let (stats, changed_since_stats) = match &engine.kept {
        Some(k) if engine.stats_kept => (
            k.snapshot.stats.clone(),
            k.snapshot.changed_since_stats + k.matching.changed,
        ),
        _ => (selective::RankStats::of(engine), 0),
    };
    let keys = selective::keys(&engine.corpus.root, articles);
    let entries = articles
        .par_iter()
        .zip(keys)
        .zip(lists)
        .zip(hashes)
        .map(
            |(((a, key), (list, bounds, counts, _)), list_hash)| selective::Entry {
                key,
                fingerprint: selective::fingerprint(a),
                text_key: crate::cache::text_key(&a.text()),
                title: a.title.clone(),
                list: list.into_iter().map(|t| t as u32).collect(),
                list_hash,
                bounds,
                counts,
            },
        )
        .collect();
    let snapshot = Snapshot {
        settings: settings.to_string(),
        stats,
        changed_since_stats,
        entries,
    };
    timings.0.append(&mut report.timings.0);
    timings.add("keep", t);
    report.timings = timings;
    report.whole_corpus = true;
    (report, snapshot)
}

/// Writes lists ranked elsewhere (`relink apply`: by the workers of a cluster job) into the
/// corpus's files, with refresh's guarantees: the same entries from the same articles, only
/// `related:` changed, atomic writes, locked lists never written, files that changed since
/// they were read left alone. `lists`: article and its list, as corpus positions.
pub fn apply(
    corpus: &Corpus,
    editorial: &Editorial,
    lists: Vec<(usize, Vec<usize>)>,
    dry_run: bool,
    show_progress: bool,
) -> RefreshReport {
    let n = lists.len();
    let lists = lists.into_iter().map(|(i, l)| (i, l, None)).collect();
    write_changed(corpus, editorial, lists, n, dry_run, show_progress).0
}

/// Lists compared and written at a time: the entries of only so many lists are held at once
/// (each list's entries are copies of its targets' fields, a few KB; a million of them would
/// be gigabytes).
const WRITE_CHUNK: usize = 8192;

/// Writes (unless `dry_run`) the lists (article, list as corpus positions, and the list's hash
/// when known) that differ from the files'. `refreshed`: how many of them were ranked. Returns
/// the report and each list's hash, in order. Lists go a chunk at a time (a JSON Lines corpus,
/// one file, in one go).
fn write_changed(
    corpus: &Corpus,
    editorial: &Editorial,
    lists: Vec<(usize, Vec<usize>, Option<u64>)>,
    refreshed: usize,
    dry_run: bool,
    show_progress: bool,
) -> (RefreshReport, Vec<u64>) {
    let total = lists.len();
    let locked = lists
        .iter()
        .filter(|(i, ..)| editorial.is_locked(*i))
        .count();
    let mut report = RefreshReport {
        refreshed,
        kept: total - refreshed,
        locked,
        unchanged: total,
        ..RefreshReport::default()
    };
    let mut hashes = Vec::with_capacity(total);
    let chunk = match corpus.format {
        crate::corpus::Format::Folder => WRITE_CHUNK,
        crate::corpus::Format::JsonLines => total.max(1),
    };
    let (mut compare_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
    let bar = progress_bar(total, "write", show_progress && !dry_run);
    for lists in lists.chunks(chunk) {
        let t = Instant::now();
        // Per list: its hash, and the article and entries when the file's list differs.
        type Compared = (u64, Option<(usize, Vec<Related>)>);
        let compared: Vec<Compared> = lists
            .par_iter()
            .map(|(i, list, known)| {
                let stored = corpus.articles[*i].related_hash;
                if *known == Some(stored) {
                    return (stored, None);
                }
                let list: Vec<Related> = list
                    .iter()
                    .map(|&t| corpus.articles[t].to_related())
                    .collect();
                let hash = crate::state::list_hash(&list);
                if editorial.is_locked(*i) {
                    // Never written; the hash kept is the ranked list's, so that the list is
                    // written once the lock goes (the fingerprint changes with it).
                    return (hash, None);
                }
                (hash, (hash != stored).then_some((*i, list)))
            })
            .collect();
        let mut to_write = Vec::new();
        for ((hash, changed), (i, ..)) in compared.into_iter().zip(lists) {
            hashes.push(hash);
            if changed.is_none() && !editorial.is_locked(*i) {
                report.matching.push((*i, hash));
            }
            to_write.extend(changed);
        }
        report.unchanged -= to_write.len();
        for (i, list) in &to_write {
            let article = &corpus.articles[*i];
            // An article taken from its record carries only its list's hash: the list itself
            // is read from the file, for the diff.
            let reread;
            let old = match (&article.related, &article.source) {
                (Some(old), _) => old.as_slice(),
                (None, Source::File(path)) if article.related_hash != empty_hash() => {
                    reread = crate::corpus::read_article(path)
                        .ok()
                        .and_then(|a| a.related)
                        .unwrap_or_default();
                    reread.as_slice()
                }
                _ => &[],
            };
            report.changes.push(diff(*i, article, old, list));
        }
        compare_time += t.elapsed();
        bar.inc((lists.len() - to_write.len()) as u64);
        if dry_run {
            continue;
        }
        let t = Instant::now();
        let written = corpus.write_lists(&to_write, &|| bar.inc(1));
        report.stamps.extend(written.stamps);
        let failed: HashSet<usize> = written
            .failures
            .iter()
            .flat_map(|f| f.articles.iter().copied())
            .collect();
        if !failed.is_empty() {
            // Only this chunk's articles can have failed: the others' changes stay.
            report.changes.retain(|c| !failed.contains(&c.article));
        }
        report.written.extend(
            to_write
                .iter()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(i, list)| (*i, crate::state::list_hash(list))),
        );
        report
            .write_errors
            .extend(written.failures.into_iter().map(|f| f.error));
        write_time += t.elapsed();
    }
    bar.finish_and_clear();
    report.timings.0.push(("compare", compare_time));
    if !dry_run {
        report.timings.0.push(("write", write_time));
    }
    (report, hashes)
}

/// Remembers the lists a refresh wrote (so that `eval` never takes them for references), in
/// `state_dir`. A record found lost or damaged stays marked incomplete until a refresh of the
/// whole corpus, with every write made, has recorded every list relink holds in the files.
/// Returns warnings (the record could not be saved, or is still incomplete).
pub fn remember_written(corpus: &Corpus, report: &RefreshReport, state_dir: &Path) -> Vec<String> {
    let (mut record, state) = crate::state::WrittenLists::load_checked(state_dir);
    let path = state_dir.join(crate::state::WRITTEN_LISTS);
    if report.written.is_empty() && state == crate::state::RecordState::Whole && path.exists() {
        return Vec::new();
    }
    let key = |i: usize| crate::state::article_key(&corpus.root, &corpus.articles[i]);
    for &(i, hash) in &report.written {
        record.record(key(i), hash);
    }
    let mut warnings = Vec::new();
    if record.is_incomplete() {
        if report.whole_corpus && report.write_errors.is_empty() {
            for &(i, hash) in &report.matching {
                record.record(key(i), hash);
            }
            record.mark_whole();
            warnings.push(format!(
                "{}: was {}; rebuilt from the lists this refresh found and wrote",
                path.display(),
                match &state {
                    crate::state::RecordState::Lost { .. } => "missing".to_string(),
                    crate::state::RecordState::Damaged { reason } => format!("damaged ({reason})"),
                    crate::state::RecordState::Whole => "incomplete".to_string(),
                }
            ));
        } else {
            warnings.push(format!(
                "{}: incomplete (lost or damaged earlier); `relink eval` refuses to grade this corpus's lists until a refresh of the whole folder has written every list",
                path.display()
            ));
        }
    }
    if let Err(e) = record.save(state_dir) {
        warnings.push(format!("{}: {e}", path.display()));
    }
    warnings
}

/// Saves the per-file records of a folder corpus after a refresh (files it wrote with their new
/// stamps), so that the next run parses only what changed.
pub fn save_records(
    engine: &Engine,
    report: &RefreshReport,
    state_dir: &Path,
) -> Result<(), String> {
    if engine.corpus.format != crate::corpus::Format::Folder || !engine.corpus.root.is_dir() {
        return Ok(());
    }
    let list_hashes: std::collections::HashMap<usize, u64> =
        report.written.iter().copied().collect();
    let written: std::collections::HashMap<usize, (crate::fsutil::FileStamp, u64, u64)> = report
        .stamps
        .iter()
        .filter_map(|&(i, (stamp, content))| {
            list_hashes.get(&i).map(|&list| (i, (stamp, content, list)))
        })
        .collect();
    crate::state::ArticleRecords::save(
        state_dir,
        &engine.corpus.root,
        &engine.corpus.articles,
        &written,
    )
    .map_err(|e| {
        format!(
            "{}: {e}",
            state_dir.join(crate::state::ARTICLE_RECORDS).display()
        )
    })
}

fn empty_hash() -> u64 {
    crate::state::list_hash(&[])
}

fn entry_id(r: &Related) -> String {
    r.web_url
        .as_deref()
        .map(normalize_url)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| normalize_title(&r.title))
}

/// Which entries enter and leave an article's list.
pub fn diff(index: usize, article: &Article, old: &[Related], new: &[Related]) -> Change {
    let old_ids: Vec<String> = old.iter().map(entry_id).collect();
    let new_ids: Vec<String> = new.iter().map(entry_id).collect();
    Change {
        article: index,
        file: article.display_path(),
        added: new
            .iter()
            .zip(&new_ids)
            .filter(|(_, id)| !old_ids.contains(id))
            .map(|(r, _)| r.title.clone())
            .collect(),
        removed: old
            .iter()
            .zip(&old_ids)
            .filter(|(_, id)| !new_ids.contains(id))
            .map(|(r, _)| r.title.clone())
            .collect(),
        reordered: {
            let mut a = old_ids.clone();
            let mut b = new_ids.clone();
            a.sort();
            b.sort();
            a == b
        },
    }
}
