//! A corpus on disk: reading every article of a folder (or of one file), and writing related
//! lists back.
//!
//! A bad file never stops the others: it becomes a [`ReadError`] in [`Corpus::errors`] and is
//! left untouched. Writes go to a temporary file in the same folder that is then renamed over the
//! original, so a reader sees the old file or the new one, never half of one; and a file whose
//! list would not change is not written at all, so a second run with nothing new touches nothing.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::article::{
    parse_article, parse_json_article, splice_control, splice_related_if_changed, Article, Control,
    ParseError, Related, Source,
};
use crate::fsutil::{self, read_regular, Rewritten, WriteError};

/// How a corpus is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Front-matter files: a folder of them, or a single one.
    Folder,
    /// One JSON object per line in a `.jsonl` file.
    JsonLines,
}

/// A file (or one line of it) that could not be read or written. Shown as `path:line: reason`,
/// or `path: reason` when there is no line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", .path.display(), line_suffix(.line), .reason)]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// The line (1-based), where there is one.
    pub line: Option<usize>,
    /// What went wrong, for a person.
    pub reason: String,
}

impl ReadError {
    fn new(path: &Path, line: Option<usize>, reason: impl Into<String>) -> Self {
        ReadError {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }

    fn parse(path: &Path, error: ParseError) -> Self {
        ReadError::new(path, error.line, error.reason)
    }

    fn io(path: &Path, error: std::io::Error) -> Self {
        ReadError::new(path, None, error.to_string())
    }
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|line| format!(":{line}")).unwrap_or_default()
}

/// Every article that could be read, and a report for each file that could not.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The path that was read.
    pub root: PathBuf,
    /// How it is stored.
    pub format: Format,
    /// The articles, sorted by path (then line), so every run sees them in the same order.
    pub articles: Vec<Article>,
    /// The files or lines that could not be read, in the same order.
    pub errors: Vec<ReadError>,
    /// Temporary files an interrupted relink left in the corpus's folders (see
    /// [`fsutil::TEMP_PREFIX`]); removed by the next run that holds the folder's lock.
    pub stale_temps: Vec<PathBuf>,
}

/// Whether a write changed the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The stored list already equals the new one; the file was not touched.
    Unchanged,
    /// The file was rewritten.
    Changed,
}

/// Reads a corpus: a folder of article files (recursively), a single article file, or a `.jsonl`
/// file.
///
/// In a folder, files ending in `.md` or `.txt` are read, in parallel; hidden files and folders
/// (names starting with `.`, which includes temporary files left by an interrupted write) and
/// other files are skipped, and symbolic links to folders are not followed. Errs only when
/// `path` itself cannot be read; a bad file or line below it is reported in
/// [`Corpus::errors`].
pub fn read_corpus(path: &Path) -> Result<Corpus, ReadError> {
    let meta = fs::metadata(path).map_err(|e| ReadError::io(path, e))?;
    if meta.is_dir() {
        return Ok(read_folder(path, &crate::state::ArticleRecords::default())?.0);
    }
    let is_jsonl = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("jsonl"));
    if is_jsonl {
        return read_jsonl(path);
    }
    let bytes = read_regular(path).map_err(|e| ReadError::io(path, e))?;
    let (articles, errors) = match article_from_bytes(path, &bytes) {
        Ok(article) => (vec![article], Vec::new()),
        Err(error) => (Vec::new(), vec![error]),
    };
    Ok(Corpus {
        root: path.to_path_buf(),
        format: Format::Folder,
        articles,
        errors,
        stale_temps: Vec::new(),
    })
}

/// Reads one front-matter file.
pub fn read_article(path: &Path) -> Result<Article, ReadError> {
    let (bytes, stamp) = fsutil::read_regular_stamped(path).map_err(|e| ReadError::io(path, e))?;
    let mut article = article_from_bytes(path, &bytes)?;
    article.stamp = Some(stamp);
    Ok(article)
}

/// The edit [`rewrite`] makes to a front-matter file: splice `entries` into whatever the file
/// holds now. A file edited since it was read is still written when the edit left everything the
/// list was ranked from (title, excerpt, the fields its entries carry) and its stored list as
/// they were (text appended to the body, say); otherwise it is left alone, "changed since it was
/// read".
fn splice_edit<'a>(
    article: &'a Article,
    path: &'a Path,
    entries: &'a [Related],
) -> impl Fn(&[u8]) -> Result<Option<Vec<u8>>, ReadError> + 'a {
    guarded_edit(
        article,
        path,
        move |now| {
            now.to_related() == article.to_related()
                && now.text() == article.text()
                && now.related_hash == article.related_hash
                && now.control == article.control
        },
        move |text| splice_related_if_changed(text, entries),
    )
}

/// An edit of a front-matter file read as `article`: `splice` applied to what the file holds
/// now, when the file is as read or when `unchanged` says an edit since left alone what the
/// splice depends on; otherwise the file is left alone, "changed since it was read".
fn guarded_edit<'a>(
    article: &'a Article,
    path: &'a Path,
    unchanged: impl Fn(&Article) -> bool + 'a,
    splice: impl Fn(&str) -> Result<Option<String>, ParseError> + 'a,
) -> impl Fn(&[u8]) -> Result<Option<Vec<u8>>, ReadError> + 'a {
    move |bytes: &[u8]| {
        let text = decode(bytes).map_err(|e| ReadError::parse(path, e))?;
        if xxh3_64(bytes) != article.content_hash {
            let now = parse_article(text, article.source.clone())
                .map_err(|_| ReadError::new(path, None, "changed since it was read"))?;
            if !unchanged(&now) {
                return Err(ReadError::new(path, None, "changed since it was read"));
            }
        }
        Ok(splice(text)
            .map_err(|e| ReadError::parse(path, e))?
            .map(String::into_bytes))
    }
}

fn from_write_error(path: &Path, e: WriteError<ReadError>) -> ReadError {
    match e {
        WriteError::Io(e) => ReadError::io(path, e),
        WriteError::Refused(reason) => ReadError::new(path, None, reason),
        WriteError::Edit(e) => e,
    }
}

/// Replaces the related list of one front-matter file with `entries`, inside the corpus folder
/// `root` (see [`crate::fsutil::rewrite`] for what is refused and what a concurrent edit does).
///
/// When the list the file holds already equals `entries` as data, nothing is written (no
/// byte, no modification time). A file without a `related` key counts as holding an empty list,
/// so a file is never rewritten only to add `related: []`; a file that had entries and gets
/// none is written with `related: []`.
pub fn write_related_in(
    root: &Path,
    article: &Article,
    entries: &[Related],
) -> Result<WriteOutcome, ReadError> {
    match write_related_unsettled(root, article, entries)? {
        None => Ok(WriteOutcome::Unchanged),
        Some(s) => {
            let path = article.source.path();
            fsutil::settle(s, &splice_edit(article, path, entries))
                .map_err(|e| from_write_error(path, e))?;
            Ok(WriteOutcome::Changed)
        }
    }
}

/// [`write_related_in`] with the file's own folder as the corpus folder.
pub fn write_related(article: &Article, entries: &[Related]) -> Result<WriteOutcome, ReadError> {
    let path = article.source.path();
    let root = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    write_related_in(root, article, entries)
}

/// The file of a front-matter article; for a JSON Lines article, the error `why`.
fn file_of<'a>(article: &'a Article, why: &str) -> Result<&'a Path, ReadError> {
    match &article.source {
        Source::File(path) => Ok(path.as_path()),
        Source::JsonLine { path, line } => Err(ReadError::new(path, Some(*line), why)),
    }
}

/// The write of [`write_related_in`], returning the replaced file to settle later.
fn write_related_unsettled(
    root: &Path,
    article: &Article,
    entries: &[Related],
) -> Result<Option<fsutil::Settle>, ReadError> {
    let path = file_of(article, "a JSON Lines article is written with write_jsonl")?;
    match fsutil::rewrite(path, root, &splice_edit(article, path, entries)) {
        Ok(Rewritten::Unchanged) => Ok(None),
        Ok(Rewritten::Changed(s)) => Ok(Some(s)),
        Err(e) => Err(from_write_error(path, e)),
    }
}

/// Files written per round; a round's replaced files are read once more (see
/// [`fsutil::settle`]) after the next round is written, so a writer that had one open gets
/// that long to finish its write. Two rounds of descriptors are open at most.
const SETTLE_ROUND: usize = 128;

/// Threads that write list files. A write waits on the disk more than it computes (each file is
/// synced before it replaces the old one), so more threads than cores keep the disk busy: on
/// 2 cores, 28,255 files took 11.5 s with 8 threads and 14.4 s with 2.
const WRITE_THREADS: usize = 8;

fn write_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(WRITE_THREADS.max(rayon::current_num_threads()))
            .thread_name(|i| format!("relink-write-{i}"))
            .build()
            .expect("the write threads start")
    })
}

/// How long the last round's replaced files are given before they are read once more.
const SETTLE_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// What [`Corpus::write_lists`] did.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// The lists that could not be written.
    pub failures: Vec<WriteFailure>,
    /// Files written: article position, the new file's stamp and the xxh3 of its bytes
    /// (front-matter files).
    pub stamps: Vec<(usize, (fsutil::FileStamp, u64))>,
}

/// Sets the `relink:` map of one front-matter file to `control`, inside the corpus folder
/// `root`, with the guarantees of [`write_related_in`]: only that block changes, the result is
/// parsed again, the write is atomic and keeps owner and mode. A file edited since `article`
/// was read is still written when its `relink:` map is as read (the edit is kept); otherwise
/// it is left alone, "changed since it was read". Returns the file as written (its stamp and
/// bytes' hash), `None` when it already held `control`.
pub fn write_control_in(
    root: &Path,
    article: &Article,
    control: &Control,
) -> Result<Option<(fsutil::FileStamp, u64)>, ReadError> {
    let path = file_of(
        article,
        "pins, blocks and locks of a JSON Lines article are set in its `relink` field",
    )?;
    let edit = guarded_edit(
        article,
        path,
        |now| now.control == article.control,
        |text| splice_control(text, control),
    );
    match fsutil::rewrite(path, root, &edit) {
        Ok(Rewritten::Unchanged) => Ok(None),
        Ok(Rewritten::Changed(s)) => fsutil::settle(s, &edit)
            .map(Some)
            .map_err(|e| from_write_error(path, e)),
        Err(e) => Err(from_write_error(path, e)),
    }
}

/// A list that could not be written, and the articles it leaves unwritten.
#[derive(Clone, Debug)]
pub struct WriteFailure {
    /// Positions in [`Corpus::articles`] whose lists were not written.
    pub articles: Vec<usize>,
    pub error: ReadError,
}

impl Corpus {
    /// Settles replaced files (see [`fsutil::settle`]), noting their stamps or failures.
    fn settle_all(&self, pending: Vec<(usize, fsutil::Settle, &[Related])>, out: &mut Written) {
        for (i, s, list) in pending {
            let article = &self.articles[i];
            let path = article.source.path();
            match fsutil::settle(s, &splice_edit(article, path, list)) {
                Ok(stamp) => out.stamps.push((i, stamp)),
                Err(e) => out.failures.push(WriteFailure {
                    articles: vec![i],
                    error: from_write_error(path, e),
                }),
            }
        }
    }

    /// Writes each `(article position, list)` into its file (in parallel for a folder; one
    /// rewrite of the file for JSON Lines), calling `progress` per list. Returns the failures;
    /// the other lists are written.
    pub fn write_lists(
        &self,
        lists: &[(usize, Vec<Related>)],
        progress: &(dyn Fn() + Sync),
    ) -> Written {
        match self.format {
            Format::Folder => {
                let mut out = Written::default();
                // Each round's replaced files are read again only after the next round is
                // written (the last round after SETTLE_GRACE), so that a writer that had one
                // open across the swap has that long to finish its write.
                let mut pending: Vec<(usize, fsutil::Settle, &[Related])> = Vec::new();
                for round in lists.chunks(SETTLE_ROUND) {
                    let written: Vec<(usize, Result<Option<fsutil::Settle>, ReadError>)> =
                        write_pool().install(|| {
                            round
                                .par_iter()
                                .map(|(i, list)| {
                                    let r = write_related_unsettled(
                                        &self.root,
                                        &self.articles[*i],
                                        list,
                                    );
                                    progress();
                                    (*i, r)
                                })
                                .collect()
                        });
                    self.settle_all(std::mem::take(&mut pending), &mut out);
                    for ((i, result), (_, list)) in written.into_iter().zip(round) {
                        match result {
                            Ok(Some(s)) => pending.push((i, s, list)),
                            Ok(None) => {}
                            Err(error) => out.failures.push(WriteFailure {
                                articles: vec![i],
                                error,
                            }),
                        }
                    }
                }
                if !pending.is_empty() {
                    std::thread::sleep(SETTLE_GRACE);
                    self.settle_all(pending, &mut out);
                }
                out
            }
            Format::JsonLines => {
                let updates: Vec<LineUpdate<'_>> = lists
                    .iter()
                    .filter_map(|(i, list)| match &self.articles[*i].source {
                        Source::JsonLine { line, .. } => Some(LineUpdate {
                            line: *line,
                            hash: Some(self.articles[*i].content_hash),
                            entries: list,
                        }),
                        Source::File(_) => None,
                    })
                    .collect();
                let written = write_jsonl_lines(&self.root, &updates);
                lists.iter().for_each(|_| progress());
                let mut out = Written::default();
                let line_of = |i: usize| self.articles[i].source.line();
                for error in written.refused {
                    let articles = lists
                        .iter()
                        .map(|(i, _)| *i)
                        .filter(|&i| line_of(i) == error.line)
                        .collect();
                    out.failures.push(WriteFailure { articles, error });
                }
                if let Err(error) = written.outcome {
                    // The file itself was not written: no list in it was.
                    let refused: HashSet<usize> = out
                        .failures
                        .iter()
                        .flat_map(|f| f.articles.iter().copied())
                        .collect();
                    let articles = lists
                        .iter()
                        .map(|(i, _)| *i)
                        .filter(|i| !refused.contains(i))
                        .collect();
                    out.failures.push(WriteFailure { articles, error });
                }
                out
            }
        }
    }
}

/// One line's new list, and the hash its content had when it was read (`None`: not checked).
struct LineUpdate<'a> {
    line: usize,
    hash: Option<u64>,
    entries: &'a [Related],
}

/// Sets `related` on the given lines (1-based) of a JSON Lines file, and writes the file when any
/// of them changes.
///
/// Only the bytes of the `related` value change (or `,"related":[...]` is added before the
/// closing brace): every other byte of the line, spacing, key order, escapes and duplicate keys
/// included, is kept, and every other line keeps its bytes. A line with two `related` keys is
/// refused and left as it is (the first such line is returned as the error), while the other
/// lines are written. As with [`write_related`], a missing `related` equals an empty list. When
/// a line is given twice, the last list wins.
pub fn write_jsonl(
    path: &Path,
    updates: &[(usize, Vec<Related>)],
) -> Result<WriteOutcome, ReadError> {
    let updates: Vec<LineUpdate<'_>> = updates
        .iter()
        .map(|(line, entries)| LineUpdate {
            line: *line,
            hash: None,
            entries,
        })
        .collect();
    let written = write_jsonl_lines(path, &updates);
    let outcome = written.outcome?;
    match written.refused.into_iter().next() {
        Some(error) => Err(error),
        None => Ok(outcome),
    }
}

/// What [`write_jsonl_lines`] did: the file's outcome, and the lines it left as they were
/// because their own text refused the edit (changed since read, not a JSON object, two
/// `related` keys...). The other lines are written all the same, as a folder corpus writes
/// its other files.
struct JsonlWritten {
    outcome: Result<WriteOutcome, ReadError>,
    refused: Vec<ReadError>,
}

fn write_jsonl_lines(path: &Path, updates: &[LineUpdate<'_>]) -> JsonlWritten {
    let mut latest = std::collections::BTreeMap::new();
    for u in updates {
        latest.insert(u.line, u);
    }
    // The edit may run more than once (the file changed while it was written); each run
    // says afresh which lines it left.
    let refused = std::cell::RefCell::new(Vec::new());
    let edit = |bytes: &[u8]| -> Result<Option<Vec<u8>>, ReadError> {
        let mut lines: Vec<Vec<u8>> = bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let mut changed = false;
        let mut left = Vec::new();
        for (&line, update) in &latest {
            let fail = |reason: String| ReadError::new(path, Some(line), reason);
            let Some(raw) = line.checked_sub(1).and_then(|index| lines.get(index)) else {
                left.push(fail("no such line".into()));
                continue;
            };
            let (content, ending) = split_line_end(raw);
            let (bom, content) = match content.strip_prefix(BOM) {
                Some(rest) if line == 1 => (BOM, rest),
                _ => (&b""[..], content),
            };
            if update.hash.is_some_and(|h| h != xxh3_64(content)) {
                left.push(fail("changed since it was read".into()));
                continue;
            }
            let Ok(text) = std::str::from_utf8(content) else {
                left.push(fail("invalid UTF-8".into()));
                continue;
            };
            let new_text = match splice_json_related(text, update.entries) {
                Ok(Some(new_text)) => new_text,
                Ok(None) => continue,
                Err(reason) => {
                    left.push(fail(reason));
                    continue;
                }
            };
            let mut new_line = bom.to_vec();
            new_line.extend_from_slice(new_text.as_bytes());
            new_line.extend_from_slice(ending);
            lines[line - 1] = new_line;
            changed = true;
        }
        *refused.borrow_mut() = left;
        Ok(changed.then(|| lines.concat()))
    };
    let root = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let outcome = match fsutil::rewrite(path, root, &edit) {
        Ok(Rewritten::Unchanged) => Ok(WriteOutcome::Unchanged),
        Ok(Rewritten::Changed(s)) => fsutil::settle(s, &edit)
            .map(|_| WriteOutcome::Changed)
            .map_err(|e| from_write_error(path, e)),
        Err(e) => Err(from_write_error(path, e)),
    };
    JsonlWritten {
        outcome,
        refused: refused.into_inner(),
    }
}

/// A UTF-8 byte-order mark, which some tools put at the start of a JSON Lines file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The top-level members of a JSON object text (known to be valid): each key, decoded, with
/// the byte span of its value; and the end of the last value (or of `{`).
fn json_members(text: &str) -> (Vec<(String, std::ops::Range<usize>)>, usize) {
    let b = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let end_of_string = |mut i: usize| {
        // `i` is just past the opening quote.
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i + 1
    };
    let end_of_value = |i: usize| match b[i] {
        b'"' => end_of_string(i + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b[j] {
                    b'"' => {
                        j = end_of_string(j + 1);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            j
        }
    };
    let mut members = Vec::new();
    let mut i = skip_ws(0) + 1; // past `{`
    let mut last_end = i;
    loop {
        i = skip_ws(i);
        if b[i] == b'}' {
            return (members, last_end);
        }
        let key_end = end_of_string(i + 1);
        let key: String = serde_json::from_str(&text[i..key_end]).unwrap_or_default();
        i = skip_ws(key_end) + 1; // past `:`
        let start = skip_ws(i);
        let end = end_of_value(start);
        members.push((key, start..end));
        last_end = end;
        i = skip_ws(end);
        if b[i] == b',' {
            i += 1;
        }
    }
}

/// `line` (one JSON object) with its `related` value replaced by `entries`, or `None` when it
/// already holds them. Every other byte is kept; the result is checked to read back the same
/// apart from `related`.
fn splice_json_related(line: &str, entries: &[Related]) -> Result<Option<String>, String> {
    let old: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if !old.is_object() {
        return Err("not a JSON object".into());
    }
    let (members, last_end) = json_members(line);
    let related: Vec<&std::ops::Range<usize>> = members
        .iter()
        .filter(|(k, _)| k == "related")
        .map(|(_, span)| span)
        .collect();
    if related.len() > 1 {
        return Err("the key \"related\" appears more than once; left as it is".into());
    }
    // A stored list that does not read as entries is replaced, not compared.
    let stored: Option<Vec<Related>> = old
        .get("related")
        .and_then(|value| serde_json::from_value::<Option<Vec<Related>>>(value.clone()).ok())
        .flatten();
    if stored.as_deref().unwrap_or_default() == entries {
        return Ok(None);
    }
    let value = serde_json::to_string(entries).map_err(|e| e.to_string())?;
    let new = match related.first() {
        Some(span) => format!("{}{value}{}", &line[..span.start], &line[span.end..]),
        None => {
            let comma = if members.is_empty() { "" } else { "," };
            format!(
                "{}{comma}\"related\":{value}{}",
                &line[..last_end],
                &line[last_end..]
            )
        }
    };
    let mut back: serde_json::Value =
        serde_json::from_str(&new).map_err(|e| format!("rewritten line does not parse: {e}"))?;
    let mut before = old;
    for v in [&mut back, &mut before] {
        if let Some(map) = v.as_object_mut() {
            map.shift_remove("related");
        }
    }
    if back != before {
        return Err("rewriting the list would change another field; left as it is".into());
    }
    Ok(Some(new))
}

fn article_from_bytes(path: &Path, bytes: &[u8]) -> Result<Article, ReadError> {
    let text = decode(bytes).map_err(|e| ReadError::parse(path, e))?;
    parse_article(text, Source::File(path.to_path_buf())).map_err(|e| ReadError::parse(path, e))
}

/// UTF-8 text, or an error at the line of the first bad byte.
fn decode(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = e.valid_up_to();
        let line = bytes[..valid].iter().filter(|b| **b == b'\n').count() + 1;
        ParseError {
            line: Some(line),
            reason: format!("invalid UTF-8 at byte {valid}"),
        }
    })
}

fn split_line_end(raw: &[u8]) -> (&[u8], &[u8]) {
    let content_len = if raw.ends_with(b"\r\n") {
        raw.len() - 2
    } else if raw.ends_with(b"\n") {
        raw.len() - 1
    } else {
        raw.len()
    };
    raw.split_at(content_len)
}

/// Reads a corpus like [`read_corpus`], but a folder's files whose stamp equals the one in
/// `records` (by path) come from their record instead of being parsed; returns the corpus and
/// how many files were parsed. Anything but a folder is read in full.
pub fn read_corpus_with_records(
    path: &Path,
    records: &crate::state::ArticleRecords,
) -> Result<(Corpus, usize), ReadError> {
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return read_folder(path, records);
    }
    let corpus = read_corpus(path)?;
    let n = corpus.articles.len() + corpus.errors.len();
    Ok((corpus, n))
}

/// The article files of a folder, as [`read_corpus`] would read them (in its order), and the
/// temporary files an interrupted run left; nothing is read. `None` when `path` is not a folder.
pub fn list_article_files(path: &Path) -> Option<(Vec<PathBuf>, Vec<PathBuf>, usize)> {
    if !fs::metadata(path).ok()?.is_dir() {
        return None;
    }
    let walk = Walk::of(path).ok()?;
    Some((walk.paths, walk.stale_temps, walk.errors.len()))
}

/// Reads every article file of a folder, in parallel, taking those whose record in `records`
/// has their current stamp from the record; returns the corpus and how many files were parsed.
fn read_folder(
    root: &Path,
    records: &crate::state::ArticleRecords,
) -> Result<(Corpus, usize), ReadError> {
    let Walk {
        paths,
        errors,
        stale_temps,
        ..
    } = Walk::of(root)?;
    let results: Vec<(PathBuf, Result<Article, ReadError>, bool)> = paths
        .into_par_iter()
        .map(|path| {
            let recorded = (!records.is_empty())
                .then(|| fsutil::FileStamp::now(&path).ok())
                .flatten()
                .and_then(|stamp| records.get(root, &path, stamp));
            match recorded {
                Some(article) => (path, Ok(article), false),
                None => {
                    let result = read_article(&path);
                    (path, result, true)
                }
            }
        })
        .collect();
    // Errors found while walking and while reading, in one path order.
    let mut failed: Vec<(PathBuf, ReadError)> = errors
        .into_iter()
        .map(|error| (error.path.clone(), error))
        .collect();
    let mut articles = Vec::with_capacity(results.len());
    let mut parsed = 0;
    for (path, result, was_parsed) in results {
        parsed += usize::from(was_parsed);
        match result {
            Ok(article) => articles.push(article),
            Err(error) => failed.push((path, error)),
        }
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    let corpus = Corpus {
        root: root.to_path_buf(),
        format: Format::Folder,
        articles,
        errors: failed.into_iter().map(|(_, error)| error).collect(),
        stale_temps,
    };
    Ok((corpus, parsed))
}

/// What a folder walk finds.
struct Walk {
    /// The corpus folder, canonical.
    root: PathBuf,
    paths: Vec<PathBuf>,
    errors: Vec<ReadError>,
    stale_temps: Vec<PathBuf>,
}

impl Walk {
    /// Walks the folder `root`: its article files sorted by path, what could not be read, and
    /// leftover temporary files.
    fn of(root: &Path) -> Result<Walk, ReadError> {
        let mut walk = Walk {
            root: fs::canonicalize(root).map_err(|e| ReadError::io(root, e))?,
            paths: Vec::new(),
            errors: Vec::new(),
            stale_temps: Vec::new(),
        };
        walk.collect(
            fs::read_dir(root).map_err(|e| ReadError::io(root, e))?,
            root,
        );
        walk.paths.sort();
        Ok(walk)
    }

    /// Collects the article files below `dir`. Symbolic links: a link to a folder is not
    /// followed; a link to a file inside the corpus folder is skipped (the file is read under its
    /// own name, once); a link to a file outside it is read, and its article is recommended like
    /// any other, but its file is never written (relink writes only inside the folder).
    fn collect(&mut self, entries: fs::ReadDir, dir: &Path) {
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.errors.push(ReadError::io(dir, e));
                    continue;
                }
            };
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                if name.starts_with(fsutil::TEMP_PREFIX) {
                    self.stale_temps.push(path);
                }
                continue;
            }
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    self.errors.push(ReadError::io(&path, e));
                    continue;
                }
            };
            if kind.is_dir() {
                match fs::read_dir(&path) {
                    Ok(inner) => self.collect(inner, &path),
                    Err(e) => self.errors.push(ReadError::io(&path, e)),
                }
            } else if !is_article_file(&path) {
                continue;
            } else if kind.is_file() {
                self.paths.push(path);
            } else if kind.is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&self.root) && target.is_file() => {}
                    Ok(target) if target.is_file() => self.paths.push(path),
                    Ok(target) => self.errors.push(ReadError::new(
                        &path,
                        None,
                        format!(
                            "a symbolic link to {}, {}; not read",
                            target.display(),
                            kind_of(&target)
                        ),
                    )),
                    Err(e) => self.errors.push(ReadError::new(
                        &path,
                        None,
                        format!("a symbolic link that leads nowhere readable ({e}); not read"),
                    )),
                }
            } else {
                // A FIFO would block a reader for ever, a device could be endless: named, so a
                // file that looks like an article is never left out without a word.
                self.errors.push(ReadError::new(
                    &path,
                    None,
                    format!("{}; not read", kind_of(&path)),
                ));
            }
        }
    }
}

/// What is at `path`, in words, when it is not a regular file.
fn kind_of(path: &Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match fs::metadata(path).map(|m| m.file_type()) {
        Ok(k) if k.is_dir() => "a folder, not an article file",
        Ok(k) if k.is_fifo() => "a FIFO, not a regular file",
        Ok(k) if k.is_socket() => "a socket, not a regular file",
        Ok(k) if k.is_block_device() || k.is_char_device() => "a device, not a regular file",
        Ok(k) if k.is_file() => "a regular file",
        _ => "not a regular file",
    }
}

fn is_article_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("md") || ext.eq_ignore_ascii_case("txt"))
}

fn read_jsonl(path: &Path) -> Result<Corpus, ReadError> {
    let bytes = read_regular(path).map_err(|e| ReadError::io(path, e))?;
    let body = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let lines: Vec<(usize, &[u8])> = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(index, raw)| (index + 1, raw.strip_suffix(b"\r").unwrap_or(raw)))
        .filter(|(_, raw)| !raw.iter().all(u8::is_ascii_whitespace))
        .collect();
    let results: Vec<Result<Article, ReadError>> = lines
        .into_par_iter()
        .map(|(line, raw)| {
            let fail = |reason: String| ReadError::new(path, Some(line), reason);
            let text = std::str::from_utf8(raw).map_err(|_| fail("invalid UTF-8".into()))?;
            let source = Source::JsonLine {
                path: path.to_path_buf(),
                line,
            };
            parse_json_article(text, source).map_err(|e| fail(e.reason))
        })
        .collect();
    let (articles, errors) = split_results(results);
    Ok(Corpus {
        root: path.to_path_buf(),
        format: Format::JsonLines,
        articles,
        errors,
        stale_temps: fsutil::stale_temps_in(path.parent().unwrap_or(Path::new("."))),
    })
}

fn split_results(results: Vec<Result<Article, ReadError>>) -> (Vec<Article>, Vec<ReadError>) {
    let mut articles = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(article) => articles.push(article),
            Err(error) => errors.push(error),
        }
    }
    (articles, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_path_and_line() {
        let with_line = ReadError::new(Path::new("a/b.md"), Some(4), "bad");
        assert_eq!(with_line.to_string(), "a/b.md:4: bad");
        let without = ReadError::new(Path::new("a/b.md"), None, "bad");
        assert_eq!(without.to_string(), "a/b.md: bad");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let err = decode(b"---\ntitle: a\n\xff\n").unwrap_err();
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn folder_walk_skips_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = "---\ntitle: \"A\"\n---\n";
        fs::create_dir_all(dir.path().join("sub/.hidden")).unwrap();
        fs::write(dir.path().join("b.md"), good).unwrap();
        fs::write(dir.path().join("sub/a.txt"), good).unwrap();
        fs::write(dir.path().join("sub/.hidden/c.md"), good).unwrap();
        fs::write(dir.path().join(".d.md"), good).unwrap();
        fs::write(dir.path().join("e.json"), good).unwrap();
        let corpus = read_corpus(dir.path()).unwrap();
        let names: Vec<_> = corpus
            .articles
            .iter()
            .map(|a| {
                a.source
                    .path()
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_path_buf()
            })
            .collect();
        assert_eq!(names, [PathBuf::from("b.md"), PathBuf::from("sub/a.txt")]);
        assert!(corpus.errors.is_empty());
        assert!(read_corpus(&dir.path().join("missing")).is_err());
        let single = read_corpus(&dir.path().join("b.md")).unwrap();
        assert_eq!(single.articles.len(), 1);
        assert_eq!(single.format, Format::Folder);
    }

    #[test]
    fn stale_article_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        fs::write(&path, "---\ntitle: \"A\"\n---\n").unwrap();
        let article = read_article(&path).unwrap();
        fs::write(&path, "---\ntitle: \"B\"\n---\n").unwrap();
        let entry = Related {
            title: "X".into(),
            ..Related::default()
        };
        let err = write_related(&article, &[entry]).unwrap_err();
        assert_eq!(err.reason, "changed since it was read");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "---\ntitle: \"B\"\n---\n"
        );
    }

    #[test]
    fn no_key_and_empty_list_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        fs::write(&path, "---\ntitle: \"A\"\n---\n").unwrap();
        let article = read_article(&path).unwrap();
        assert_eq!(
            write_related(&article, &[]).unwrap(),
            WriteOutcome::Unchanged
        );
        let entry = Related {
            title: "X".into(),
            ..Related::default()
        };
        assert_eq!(
            write_related(&article, &[entry]).unwrap(),
            WriteOutcome::Changed
        );
        let article = read_article(&path).unwrap();
        assert_eq!(write_related(&article, &[]).unwrap(), WriteOutcome::Changed);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "---\ntitle: \"A\"\nrelated: []\n---\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn permissions_and_symlinks_survive_a_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        fs::write(&path, "---\ntitle: \"A\"\n---\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.md");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let article = read_article(&link).unwrap();
        let entry = Related {
            title: "X".into(),
            ..Related::default()
        };
        assert_eq!(
            write_related(&article, &[entry]).unwrap(),
            WriteOutcome::Changed
        );
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(fs::read_to_string(&path).unwrap().contains("related:"));
    }
}
