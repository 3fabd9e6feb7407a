//! A corpus on disk: reading every article of a folder (or of one file), and writing related
//! lists back.
//!
//! A bad file never stops the others: it becomes a [`ReadError`] in [`Corpus::errors`] and is
//! left untouched. Writes go to a temporary file in the same folder that is then renamed over the
//! original, so a reader sees the old file or the new one, never half of one; and a file whose
//! list would not change is not written at all, so a second run with nothing new touches nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::article::{
    parse_article, parse_json_article, splice_related_if_changed, Article, ParseError, Related,
    Source,
};

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
        return read_folder(path);
    }
    let is_jsonl = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("jsonl"));
    if is_jsonl {
        return read_jsonl(path);
    }
    let bytes = fs::read(path).map_err(|e| ReadError::io(path, e))?;
    let (articles, errors) = match article_from_bytes(path, &bytes) {
        Ok(article) => (vec![article], Vec::new()),
        Err(error) => (Vec::new(), vec![error]),
    };
    Ok(Corpus {
        root: path.to_path_buf(),
        format: Format::Folder,
        articles,
        errors,
    })
}

/// Reads one front-matter file.
pub fn read_article(path: &Path) -> Result<Article, ReadError> {
    let bytes = fs::read(path).map_err(|e| ReadError::io(path, e))?;
    article_from_bytes(path, &bytes)
}

/// Replaces the related list of one front-matter file with `entries`.
///
/// The file is read again first: if its bytes no longer hash to [`Article::content_hash`],
/// someone edited it after it was read, and it is left alone with the error "changed since it
/// was read". When the list it holds already equals `entries` as data, nothing is written (no
/// byte, no modification time). A file without a `related` key counts as holding an empty list,
/// so a file is never rewritten only to add `related: []`; a file that had entries and gets
/// none is written with `related: []`.
pub fn write_related(article: &Article, entries: &[Related]) -> Result<WriteOutcome, ReadError> {
    let path = match &article.source {
        Source::File(path) => path.as_path(),
        Source::JsonLine { path, line } => {
            return Err(ReadError::new(
                path,
                Some(*line),
                "a JSON Lines article is written with write_jsonl",
            ))
        }
    };
    let bytes = fs::read(path).map_err(|e| ReadError::io(path, e))?;
    if xxh3_64(&bytes) != article.content_hash {
        return Err(ReadError::new(path, None, "changed since it was read"));
    }
    let text = decode(&bytes).map_err(|e| ReadError::parse(path, e))?;
    let Some(new_text) =
        splice_related_if_changed(text, entries).map_err(|e| ReadError::parse(path, e))?
    else {
        return Ok(WriteOutcome::Unchanged);
    };
    write_atomic(path, new_text.as_bytes()).map_err(|e| ReadError::io(path, e))?;
    Ok(WriteOutcome::Changed)
}

/// Sets `related` on the given lines (1-based) of a JSON Lines file, and writes the file when any
/// of them changes.
///
/// A changed line is re-serialised compactly with its keys in their original order (`related`
/// stays where it was, or comes last when it is new); every other line keeps its bytes. As with
/// [`write_related`], a missing `related` equals an empty list. When a line is given twice, the
/// last list wins.
pub fn write_jsonl(
    path: &Path,
    updates: &[(usize, Vec<Related>)],
) -> Result<WriteOutcome, ReadError> {
    let bytes = fs::read(path).map_err(|e| ReadError::io(path, e))?;
    let mut lines: Vec<Vec<u8>> = bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let mut latest = std::collections::BTreeMap::new();
    for (line, entries) in updates {
        latest.insert(*line, entries);
    }
    let mut changed = false;
    for (line, entries) in latest {
        let raw = line
            .checked_sub(1)
            .and_then(|index| lines.get(index))
            .ok_or_else(|| ReadError::new(path, Some(line), "no such line"))?;
        let (content, ending) = split_line_end(raw);
        let fail = |reason: String| ReadError::new(path, Some(line), reason);
        let text = std::str::from_utf8(content).map_err(|_| fail("invalid UTF-8".into()))?;
        let mut object: serde_json::Value =
            serde_json::from_str(text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
        let map = object
            .as_object_mut()
            .ok_or_else(|| fail("not a JSON object".into()))?;
        // A stored list that does not read as entries is replaced, not compared.
        let stored: Option<Vec<Related>> = map
            .get("related")
            .and_then(|value| serde_json::from_value::<Option<Vec<Related>>>(value.clone()).ok())
            .flatten();
        if stored.as_deref().unwrap_or_default() == entries.as_slice() {
            continue;
        }
        let value = serde_json::to_value(entries).map_err(|e| fail(e.to_string()))?;
        map.insert("related".to_string(), value);
        let mut new_line = serde_json::to_vec(&object).map_err(|e| fail(e.to_string()))?;
        new_line.extend_from_slice(ending);
        lines[line - 1] = new_line;
        changed = true;
    }
    if !changed {
        return Ok(WriteOutcome::Unchanged);
    }
    write_atomic(path, &lines.concat()).map_err(|e| ReadError::io(path, e))?;
    Ok(WriteOutcome::Changed)
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

fn read_folder(root: &Path) -> Result<Corpus, ReadError> {
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    let entries = fs::read_dir(root).map_err(|e| ReadError::io(root, e))?;
    collect_files(entries, root, &mut paths, &mut errors);
    paths.sort();
    let results: Vec<(PathBuf, Result<Article, ReadError>)> = paths
        .into_par_iter()
        .map(|path| {
            let result = read_article(&path);
            (path, result)
        })
        .collect();
    // Errors found while walking and while reading, in one path order.
    let mut failed: Vec<(PathBuf, ReadError)> = errors
        .into_iter()
        .map(|error| (error.path.clone(), error))
        .collect();
    let mut articles = Vec::with_capacity(results.len());
    for (path, result) in results {
        match result {
            Ok(article) => articles.push(article),
            Err(error) => failed.push((path, error)),
        }
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Corpus {
        root: root.to_path_buf(),
        format: Format::Folder,
        articles,
        errors: failed.into_iter().map(|(_, error)| error).collect(),
    })
}

fn collect_files(
    entries: fs::ReadDir,
    dir: &Path,
    paths: &mut Vec<PathBuf>,
    errors: &mut Vec<ReadError>,
) {
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(ReadError::io(dir, e));
                continue;
            }
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) => {
                errors.push(ReadError::io(&path, e));
                continue;
            }
        };
        if kind.is_dir() {
            match fs::read_dir(&path) {
                Ok(inner) => collect_files(inner, &path, paths, errors),
                Err(e) => errors.push(ReadError::io(&path, e)),
            }
        } else if (kind.is_file() || kind.is_symlink() && path.is_file()) && is_article_file(&path)
        {
            paths.push(path);
        }
    }
}

fn is_article_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("md") || ext.eq_ignore_ascii_case("txt"))
}

fn read_jsonl(path: &Path) -> Result<Corpus, ReadError> {
    let bytes = fs::read(path).map_err(|e| ReadError::io(path, e))?;
    let lines: Vec<(usize, &[u8])> = bytes
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

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so the
/// file is never seen half-written and a crash leaves either version whole. The folder is not
/// synced after the rename: a crash may then keep the old version, which the next run rewrites,
/// and syncing would double the cost of every write. An existing file's permissions are kept; a
/// symbolic link is written through, not replaced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let permissions = fs::metadata(&target).ok().map(|m| m.permissions());
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(contents)?;
    temp.flush()?;
    temp.as_file().sync_all()?;
    if let Some(permissions) = permissions {
        temp.as_file().set_permissions(permissions)?;
    }
    temp.persist(&target).map_err(|e| e.error)?;
    Ok(())
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
