//! What relink remembers about the lists it wrote (`written-lists.tsv` in the state folder), so
//! that `eval` never grades relink against its own output.
//!
//! After a refresh, the lists in the files are relink's: scoring against them would measure
//! relink's consistency and call it quality. Each line of the file is
//! `<article key>\t<xxh3 of the list as JSON>`; the key is the article's path relative to the
//! corpus (a JSON Lines article: its URL, else its title). A reference list is relink's when its
//! hash is the one recorded for its article, or any hash relink recorded (so a renamed file is
//! still recognised). Lists an editor changed by hand no longer match and are scored again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::fsutil::FileStamp;

use crate::article::{Article, Related, Source};

/// Name of the record in the state folder.
pub const WRITTEN_LISTS: &str = "written-lists.tsv";

/// The hash a list is recorded under.
pub fn list_hash(entries: &[Related]) -> u64 {
    let json = serde_json::to_vec(entries).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&json)
}

/// The key an article's list is recorded under.
pub fn article_key(root: &Path, article: &Article) -> String {
    match &article.source {
        Source::File(path) => path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned(),
        Source::JsonLine { .. } => article
            .web_url
            .clone()
            .unwrap_or_else(|| article.title.clone()),
    }
    .replace(['\t', '\n'], " ")
}

/// The lists relink wrote, by article.
#[derive(Clone, Debug, Default)]
pub struct WrittenLists {
    by_key: HashMap<String, u64>,
    all: HashSet<u64>,
    /// Whether the record is known to miss lists relink wrote (it was found damaged or lost
    /// while relink's other state says it had written here). Kept until a full refresh has
    /// seen every list again, so that `eval` does not grade relink's own lists meanwhile.
    incomplete: bool,
}

/// What was found where the record of written lists should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// The record, whole (or none, and nothing says relink ever wrote here).
    Whole,
    /// No record, though relink's other state files say it has refreshed this corpus.
    Lost { evidence: PathBuf },
    /// A record that fails its own checks (emptied, cut short, edited), or that a refresh
    /// marked incomplete after finding it so.
    Damaged { reason: String },
}

/// The first line of the record: its format, how many lines follow, and the xxh3 of them, so
/// a record that was emptied, cut short or edited is told from a whole one.
fn header_line(lines: usize, hash: u64, incomplete: bool) -> String {
    let mark = if incomplete { " incomplete" } else { "" };
    format!("# relink written-lists 2 lines={lines} xxh3={hash:016x}{mark}\n")
}

impl WrittenLists {
    /// Reads the record in `state_dir`; none (or an unreadable one) is an empty record. See
    /// [`WrittenLists::load_checked`] for whether it can be trusted.
    pub fn load(state_dir: &Path) -> WrittenLists {
        WrittenLists::load_checked(state_dir).0
    }

    /// Reads the record in `state_dir` and says whether it is whole. A record is lost when it
    /// is missing while the per-file records or the last clean refresh's stamp (written only
    /// by a refresh) are there; damaged when its header's count or hash disagrees with its
    /// lines, when a line does not read, or when it is empty. A record of relink 0.1's format
    /// (no header) is taken as whole when every line reads.
    pub fn load_checked(state_dir: &Path) -> (WrittenLists, RecordState) {
        let mut out = WrittenLists::default();
        let path = state_dir.join(WRITTEN_LISTS);
        let text = match crate::fsutil::read_regular_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let evidence = [ARTICLE_RECORDS, LAST_REFRESH]
                    .iter()
                    .map(|name| state_dir.join(name))
                    .find(|p| p.exists());
                return match evidence {
                    Some(evidence) => {
                        out.incomplete = true;
                        (out, RecordState::Lost { evidence })
                    }
                    None => (out, RecordState::Whole),
                };
            }
            Err(e) => {
                out.incomplete = true;
                return (
                    out,
                    RecordState::Damaged {
                        reason: format!("unreadable: {e}"),
                    },
                );
            }
        };
        let mut problem: Option<String> = None;
        let (header, body) = match text.strip_prefix("# relink written-lists ") {
            Some(rest) => {
                let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
                (Some(first), body)
            }
            None => (None, text.as_str()),
        };
        let mut lines = 0usize;
        let first_body_line = if header.is_some() { 2 } else { 1 };
        for line in body.lines() {
            lines += 1;
            let parsed = line
                .rsplit_once('\t')
                .and_then(|(key, hash)| Some((key, u64::from_str_radix(hash, 16).ok()?)));
            match parsed {
                Some((key, h)) => {
                    out.by_key.insert(key.to_string(), h);
                    out.all.insert(h);
                }
                None => {
                    problem.get_or_insert_with(|| {
                        format!("line {} does not read", lines - 1 + first_body_line)
                    });
                }
            }
        }
        match header {
            Some(first) => {
                let field = |name: &str| {
                    first
                        .split(' ')
                        .find_map(|f| f.strip_prefix(name))
                        .map(str::to_string)
                };
                let expect_lines = field("lines=").and_then(|n| n.parse::<usize>().ok());
                let expect_hash = field("xxh3=").and_then(|h| u64::from_str_radix(&h, 16).ok());
                if !first.starts_with("2 ") || expect_lines.is_none() || expect_hash.is_none() {
                    problem = Some("its first line is not a header relink wrote".into());
                } else if expect_lines != Some(lines)
                    || expect_hash != Some(xxhash_rust::xxh3::xxh3_64(body.as_bytes()))
                {
                    problem = Some(format!(
                        "it holds {lines} lines that do not match its header ({} lines): cut short or edited",
                        expect_lines.unwrap_or_default()
                    ));
                } else if first.split(' ').any(|f| f == "incomplete") {
                    problem.get_or_insert_with(|| {
                        "a refresh found it damaged or lost, and no full refresh has seen every list since"
                            .into()
                    });
                }
            }
            None if text.trim().is_empty() => {
                problem = Some("it is empty".into());
            }
            None => {}
        }
        match problem {
            Some(reason) => {
                out.incomplete = true;
                (out, RecordState::Damaged { reason })
            }
            None => (out, RecordState::Whole),
        }
    }

    /// Whether `entries`, held by the article of `key`, are a list relink wrote.
    pub fn is_relinks(&self, key: &str, entries: &[Related]) -> bool {
        let h = list_hash(entries);
        self.by_key.get(key) == Some(&h) || self.all.contains(&h)
    }

    /// Notes that relink wrote the list of hash `hash` for the article of `key`.
    pub fn record(&mut self, key: String, hash: u64) {
        self.all.insert(hash);
        self.by_key.insert(key, hash);
    }

    /// Whether the record may miss lists relink wrote.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    /// Marks the record whole again: a full refresh has just recorded every list relink holds
    /// in the files.
    pub fn mark_whole(&mut self) {
        self.incomplete = false;
    }

    /// Writes the record into `state_dir` (atomically). Hashes no article holds any more are
    /// dropped.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let mut keys: Vec<(&String, &u64)> = self.by_key.iter().collect();
        keys.sort();
        let mut body = String::with_capacity(keys.len() * 48);
        for (k, h) in &keys {
            body.push_str(&format!("{k}\t{h:016x}\n"));
        }
        let header = header_line(
            keys.len(),
            xxhash_rust::xxh3::xxh3_64(body.as_bytes()),
            self.incomplete,
        );
        crate::fsutil::write_new(
            &state_dir.join(WRITTEN_LISTS),
            [header.as_bytes(), body.as_bytes()].concat().as_slice(),
        )
    }
}

/// Name of the file that remembers the state a clean refresh left the corpus in.
pub const LAST_REFRESH: &str = "last-refresh";

/// One hash of everything a refresh's lists depend on: `settings` (relink's version, the model,
/// the search mode and the ranking options, as the caller renders them) and every article file
/// with its stamp, in order. When a rerun finds the same hash, no file changed since the last
/// clean refresh, so every list it would compute is the one the file holds.
pub fn refresh_identity(settings: &str, root: &Path, files: &[(PathBuf, FileStamp)]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(settings.as_bytes());
    for (path, st) in files {
        h.update(
            path.strip_prefix(root)
                .unwrap_or(path)
                .as_os_str()
                .as_encoded_bytes(),
        );
        h.update(&[0]);
        for x in [st.dev, st.ino, st.size] {
            h.update(&x.to_le_bytes());
        }
        h.update(&st.mtime_ns.to_le_bytes());
        h.update(&st.ctime_ns.to_le_bytes());
    }
    format!("{:032x}", h.digest128())
}

/// The identity a clean refresh saved in `state_dir`, if any.
pub fn last_refresh(state_dir: &Path) -> Option<String> {
    crate::fsutil::read_regular_string(&state_dir.join(LAST_REFRESH))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Saves (`Some`) or forgets (`None`) the identity of the last clean refresh.
pub fn save_last_refresh(state_dir: &Path, identity: Option<&str>) -> std::io::Result<()> {
    let path = state_dir.join(LAST_REFRESH);
    match identity {
        Some(id) => crate::fsutil::write_new(&path, format!("{id}\n").as_bytes()),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Name of the per-file records in the state folder.
pub const ARTICLE_RECORDS: &str = "articles.jsonl";

/// What a record file starts with; records of another relink version are not used (the parser
/// may read a file differently).
fn records_header() -> String {
    // The number after the version counts changes of what a record holds (2: the `relink:`
    // map).
    format!("relink-articles {} 2\n", env!("CARGO_PKG_VERSION"))
}

/// Records parsed, or serialised, at a time.
const RECORDS_BLOCK: usize = 16_384;

/// One line of the record file.
#[derive(serde::Serialize, serde::Deserialize)]
struct RecordLine {
    /// Path relative to the corpus folder.
    path: String,
    stamp: [i64; 5],
    article: Article,
}

fn stamp_fields(s: FileStamp) -> [i64; 5] {
    [
        s.dev as i64,
        s.ino as i64,
        s.size as i64,
        s.mtime_ns as i64,
        s.ctime_ns as i64,
    ]
}

/// The articles of a folder as they were read, by path and stamp, so that a run parses only the
/// files that changed since (`articles.jsonl`: a header line, then one JSON line per file). A
/// record is used only for a file whose stamp is the same: any write changes the status-change
/// time.
#[derive(Default)]
pub struct ArticleRecords {
    by_path: HashMap<String, ([i64; 5], Article)>,
}

impl ArticleRecords {
    /// Reads the records in `state_dir`; none or another version's is no records (a damaged
    /// line is skipped, and reading stops at a line that is not UTF-8).
    pub fn load(state_dir: &Path) -> ArticleRecords {
        use std::io::BufRead;
        let mut out = ArticleRecords::default();
        let Ok(file) = crate::fsutil::open_regular(&state_dir.join(ARTICLE_RECORDS)) else {
            return out;
        };
        // Line by line: the file of a million articles is most of a gigabyte.
        let mut lines = std::io::BufReader::with_capacity(1 << 20, file).lines();
        let header = records_header();
        match lines.next() {
            Some(Ok(first)) if first == header.trim_end_matches('\n') => {}
            _ => return out,
        }
        use rayon::prelude::*;
        let mut block: Vec<String> = Vec::with_capacity(RECORDS_BLOCK);
        let mut parse = |block: &mut Vec<String>| {
            // Parsed on every core, a block at a time.
            let records: Vec<RecordLine> = block
                .par_iter()
                .filter_map(|line| serde_json::from_str::<RecordLine>(line).ok())
                .collect();
            for r in records {
                out.by_path.insert(r.path, (r.stamp, r.article));
            }
            block.clear();
        };
        for line in lines {
            let Ok(line) = line else {
                // Not UTF-8 or unreadable from here on: the records read so far are whole.
                break;
            };
            block.push(line);
            if block.len() == RECORDS_BLOCK {
                parse(&mut block);
            }
        }
        parse(&mut block);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The article of `file` (below the corpus folder `root`) when its record has `stamp`.
    pub fn get(&self, root: &Path, file: &Path, stamp: FileStamp) -> Option<Article> {
        let rel = file.strip_prefix(root).unwrap_or(file).to_string_lossy();
        let (recorded, article) = self.by_path.get(rel.as_ref())?;
        if *recorded != stamp_fields(stamp) {
            return None;
        }
        let mut article = article.clone();
        article.source = crate::article::Source::File(file.to_path_buf());
        article.stamp = Some(stamp);
        Some(article)
    }

    /// Writes the records of `articles` (front-matter files with a stamp) into `state_dir`.
    /// `written` gives, for articles whose list relink just wrote, the new file's stamp and
    /// content hash and the new list's hash.
    pub fn save(
        state_dir: &Path,
        root: &Path,
        articles: &[Article],
        written: &HashMap<usize, (FileStamp, u64, u64)>,
    ) -> std::io::Result<()> {
        use rayon::prelude::*;
        let line_of = |i: usize, a: &Article| -> Option<String> {
            let Source::File(path) = &a.source else {
                return None;
            };
            let mut a = a.clone();
            let stamp = match written.get(&i) {
                Some(&(stamp, content_hash, related_hash)) => {
                    a.content_hash = content_hash;
                    a.related_hash = related_hash;
                    stamp
                }
                None => a.stamp?,
            };
            let line = RecordLine {
                path: path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .into_owned(),
                stamp: stamp_fields(stamp),
                article: a,
            };
            serde_json::to_string(&line).ok()
        };
        crate::fsutil::write_new_with(&state_dir.join(ARTICLE_RECORDS), |w| {
            w.write_all(records_header().as_bytes())?;
            // A block of records is serialised on every core, then written in order: never
            // all of them in memory at once.
            for (b, block) in articles.chunks(RECORDS_BLOCK).enumerate() {
                let lines: Vec<Option<String>> = block
                    .par_iter()
                    .enumerate()
                    .map(|(j, a)| line_of(b * RECORDS_BLOCK + j, a))
                    .collect();
                for line in lines.into_iter().flatten() {
                    w.write_all(line.as_bytes())?;
                    w.write_all(b"\n")?;
                }
            }
            Ok(())
        })
    }
}
