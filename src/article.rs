//! One article: parsing its front matter, and rewriting its `related:` block.
//!
//! An article file is YAML front matter between a first line of exactly `---` and the next line of
//! exactly `---`, then an optional body. Reading goes through a YAML parser; writing never
//! re-serialises the front matter. [`splice_related`] replaces the bytes of the top-level
//! `related:` block and nothing else, so comments, key order, quoting, blank lines and line ends of
//! the rest of the file survive a rewrite.
//!
//! The block is rendered in the layout the real corpora use (two-space indents, list items under
//! their key, URLs and prose double-quoted, names plain), so that rendering the list a file already
//! holds gives back the same bytes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use xxhash_rust::xxh3::xxh3_64;

/// Who published an article.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Display name, such as `Forbes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Domain, such as `forbes.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// An image attached to an article or to a related entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "Value")]
pub struct Image {
    /// Where the image lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    /// Height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Whether the publisher's cache holds a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_cached: Option<bool>,
    /// Every other key, kept so that a rewrite loses nothing and comparisons see everything.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of a `related:` list: a copy of the fields of the article it points at.
///
/// Deserialising (from YAML or JSON) applies the same rules as reading a file, so a list read from
/// either format compares equal to the same list read from the other.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "Value")]
pub struct Related {
    /// Title of the target article; it is how entries are matched to articles.
    pub title: String,
    /// Excerpt of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Publication time of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_date_time: Option<DateTime<Utc>>,
    /// Canonical URL of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// AMP URL of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amp_web_url: Option<String>,
    /// AMP-cache URL of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdn_amp_web_url: Option<String>,
    /// `article`, `video`, ... (the YAML key is `type`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Publisher of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// The provider's quality score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<i64>,
    /// Images of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Image>>,
    /// Every other key, kept so that comparing a stored list with a new one is faithful.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where an article came from, so that it can be reported and written back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A front-matter file.
    File(PathBuf),
    /// One line (1-based) of a JSON Lines file.
    JsonLine {
        /// The JSON Lines file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
    },
}

impl Source {
    /// The file the article is in.
    pub fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::JsonLine { path, .. } => path,
        }
    }

    /// The line of a JSON Lines article; `None` for a front-matter file.
    pub fn line(&self) -> Option<usize> {
        match self {
            Source::File(_) => None,
            Source::JsonLine { line, .. } => Some(*line),
        }
    }
}

/// An article as read from its file: the fields the engine uses, and every other key kept aside.
#[derive(Clone, Debug, PartialEq)]
pub struct Article {
    /// Where it was read from.
    pub source: Source,
    /// Title; the only required field.
    pub title: String,
    /// Short summary.
    pub excerpt: Option<String>,
    /// Publication time, in UTC whatever offset the file wrote.
    pub published_date_time: Option<DateTime<Utc>>,
    /// Canonical URL; videos often have none.
    pub web_url: Option<String>,
    /// URL at the publisher.
    pub original_url: Option<String>,
    /// AMP URL.
    pub amp_web_url: Option<String>,
    /// AMP-cache URL.
    pub cdn_amp_web_url: Option<String>,
    /// `article`, `video`, ... (the YAML key is `type`).
    pub kind: Option<String>,
    /// Section, such as `news`.
    pub category: Option<String>,
    /// The provider's quality score.
    pub quality: Option<i64>,
    /// Popularity score; may be negative.
    pub heat: Option<i64>,
    /// Whether the article is live.
    pub published: Option<bool>,
    /// Publisher; only its name and domain are kept (the file keeps the rest).
    pub provider: Option<Provider>,
    /// Topics; real files carry null items, kept as `None` so nothing shifts.
    pub topics: Vec<Option<String>>,
    /// Images.
    pub images: Option<Vec<Image>>,
    /// The stored related list; `None` when the file has no `related` key (or a null one).
    pub related: Option<Vec<Related>>,
    /// Every other top-level key (`featuredContent`, `secured`, ...), kept.
    pub extra: BTreeMap<String, Value>,
    /// xxh3 of the bytes as read (for JSON Lines: of the line, without its line end), so that a
    /// writer can tell whether the file was edited after it was read.
    pub content_hash: u64,
}

impl Article {
    /// The text that is embedded: title, then `". "` and the excerpt when there is a non-blank
    /// one.
    pub fn text(&self) -> String {
        match self.excerpt.as_deref() {
            Some(excerpt) if !excerpt.trim().is_empty() => format!("{}. {}", self.title, excerpt),
            _ => self.title.clone(),
        }
    }

    /// The entry another article's `related:` list carries for this one. Fields this article
    /// lacks are absent from the entry too.
    pub fn to_related(&self) -> Related {
        Related {
            title: self.title.clone(),
            excerpt: self.excerpt.clone(),
            published_date_time: self.published_date_time,
            web_url: self.web_url.clone(),
            amp_web_url: self.amp_web_url.clone(),
            cdn_amp_web_url: self.cdn_amp_web_url.clone(),
            kind: self.kind.clone(),
            provider: self.provider.clone(),
            quality: self.quality,
            images: self.images.clone(),
            extra: BTreeMap::new(),
        }
    }

    /// `path`, or `path:line` for an article from a JSON Lines file.
    pub fn display_path(&self) -> String {
        match &self.source {
            Source::File(path) => path.display().to_string(),
            Source::JsonLine { path, line } => format!("{}:{line}", path.display()),
        }
    }

    /// The title lowercased, with every run of non-alphanumeric characters turned into one
    /// space: two files that differ only in case, quotes or dashes get the same key, which is
    /// what a duplicate check wants.
    pub fn normalized_title(&self) -> String {
        normalize_title(&self.title)
    }
}

/// The key [`Article::normalized_title`] uses, for titles that are not in an [`Article`] (such as
/// the titles of [`Related`] entries).
pub fn normalize_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for word in title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Why a file's text could not be read as an article.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", line_prefix(.line), .reason)]
pub struct ParseError {
    /// The line in the file (1-based), where there is one.
    pub line: Option<usize>,
    /// What is wrong, for a person.
    pub reason: String,
}

impl ParseError {
    fn new(line: Option<usize>, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            reason: reason.into(),
        }
    }
}

fn line_prefix(line: &Option<usize>) -> String {
    line.map(|line| format!("line {line}: "))
        .unwrap_or_default()
}

/// Parses a front-matter file. `text` is the whole file; [`Article::content_hash`] is taken of
/// its bytes.
pub fn parse_article(text: &str, source: Source) -> Result<Article, ParseError> {
    let content_hash = xxh3_64(text.as_bytes());
    let layout = FrontMatter::find(text)?;
    let yaml = layout.yaml(text);
    let map = parse_mapping(yaml, layout.first_line)?;
    let locate = |key: &str| top_level_key_line(yaml, layout.first_line, key);
    article_from_mapping(map, source, content_hash, &locate)
}

/// Parses one line of a JSON Lines file: an object with the same field names as the front
/// matter. The error carries no line; the caller knows which line it gave.
pub fn parse_json_article(line: &str, source: Source) -> Result<Article, ParseError> {
    let content_hash = xxh3_64(line.as_bytes());
    let json: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        ParseError::new(
            None,
            format!("invalid JSON: {}", strip_locations(&e.to_string())),
        )
    })?;
    if !json.is_object() {
        return Err(ParseError::new(None, "not a JSON object"));
    }
    let value = serde_yaml::to_value(&json)
        .map_err(|e| ParseError::new(None, format!("unsupported JSON value: {e}")))?;
    let Value::Mapping(map) = value else {
        return Err(ParseError::new(None, "not a JSON object"));
    };
    article_from_mapping(map, source, content_hash, &|_| None)
}

/// Renders a whole `related:` block, ending with `line_end`. An empty list is `related: []`.
pub fn render_related_block(entries: &[Related], line_end: &str) -> String {
    if entries.is_empty() {
        return format!("related: []{line_end}");
    }
    let mut out = format!("related:{line_end}");
    for entry in entries {
        let mut body = String::new();
        push_related_fields(&mut body, 4, entry, line_end);
        push_as_item(&mut out, 2, &body, line_end);
    }
    out
}

/// The byte range of the top-level `related:` block of a front-matter file: the `related:` line
/// and every following line that belongs to it, each with its line end. Blank lines after the
/// block are not part of it. `None` when the front matter has no `related` key.
pub fn related_block_span(text: &str) -> Result<Option<Range<usize>>, ParseError> {
    let layout = FrontMatter::find(text)?;
    let lines = layout.lines(text);
    Ok(related_span_in(&lines))
}

/// Returns `original` with only its `related:` block replaced by one rendered from `entries`.
///
/// With no `related` key, the block goes before a top-level `secured:` line (the key real files
/// end with), keeping the blank line that separated `secured:` from what came before; with no
/// `secured:` either, it goes at the end of the front matter. The new block uses the file's line
/// end.
///
/// A file that does not parse as an article is an error. The result is parsed again before it
/// is returned: if any other key would read differently, or the list would not read back as
/// `entries`, that is an error rather than a damaged file.
pub fn splice_related(original: &str, entries: &[Related]) -> Result<String, ParseError> {
    let (layout, old_map, _) = read_for_splice(original)?;
    splice_parsed(original, &layout, old_map, entries)
}

/// Like [`splice_related`], but `None` when the list the file holds already equals `entries` as
/// data, a missing or null `related` counting as an empty list. Parses the file once when
/// nothing changes, which is the common case on a rerun.
pub fn splice_related_if_changed(
    original: &str,
    entries: &[Related],
) -> Result<Option<String>, ParseError> {
    let (layout, old_map, stored) = read_for_splice(original)?;
    if stored.as_deref().unwrap_or_default() == entries {
        return Ok(None);
    }
    splice_parsed(original, &layout, old_map, entries).map(Some)
}

/// Parses a file about to be rewritten: its layout, its top-level mapping (to check the splice
/// against) and its stored list. A file that does not read as an article is refused, so that a
/// writer never touches a file a reader would report as broken.
fn read_for_splice(
    original: &str,
) -> Result<(FrontMatter, Mapping, Option<Vec<Related>>), ParseError> {
    let layout = FrontMatter::find(original)?;
    let yaml = layout.yaml(original);
    let map = parse_mapping(yaml, layout.first_line)?;
    let locate = |key: &str| top_level_key_line(yaml, layout.first_line, key);
    let article = article_from_mapping(map.clone(), Source::File(PathBuf::new()), 0, &locate)?;
    Ok((layout, map, article.related))
}

fn splice_parsed(
    original: &str,
    layout: &FrontMatter,
    old_map: Mapping,
    entries: &[Related],
) -> Result<String, ParseError> {
    let line_end = layout.line_end;
    let block = render_related_block(entries, line_end);
    let lines = layout.lines(original);

    let (at, end, insert) = if let Some(span) = related_span_in(&lines) {
        (span.start, span.end, block)
    } else if let Some(i) = lines
        .iter()
        .position(|l| is_top_level_key(l.text, "secured"))
    {
        let blank_before = i > 0 && lines[i - 1].text.trim().is_empty();
        let insert = if blank_before {
            block + line_end
        } else {
            block
        };
        (lines[i].start, lines[i].start, insert)
    } else {
        // Real files separate top-level sections with blank lines; follow suit when this one
        // does.
        let uses_blank_lines = lines.iter().any(|l| l.text.trim().is_empty());
        let last_is_text = lines.last().is_some_and(|l| !l.text.trim().is_empty());
        let insert = if uses_blank_lines && last_is_text {
            format!("{line_end}{block}")
        } else {
            block
        };
        (layout.close_start, layout.close_start, insert)
    };

    let mut out = String::with_capacity(original.len() + insert.len());
    out.push_str(&original[..at]);
    out.push_str(&insert);
    out.push_str(&original[end..]);
    check_splice(old_map, &out, entries)?;
    Ok(out)
}

/// Renders a timestamp the way the corpora write it: RFC 3339 in UTC with `Z`, fractional
/// seconds only when there are any.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads a timestamp: RFC 3339 with any offset, or YAML's forms without an offset (taken as
/// UTC), or a bare date (midnight UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
}

// ---------------------------------------------------------------------------------------------
// Locating the front matter and the related block.

/// Where the front matter sits in a file's text.
struct FrontMatter {
    /// Byte offset just past the opening `---` line and its line end.
    open_end: usize,
    /// Byte offset of the closing `---` line.
    close_start: usize,
    /// The line end of the opening line, used for every line written.
    line_end: &'static str,
    /// The file line (1-based) of the first line of YAML.
    first_line: usize,
}

/// One line of the front matter: its byte range (line end included) and its text without the
/// line end.
struct Line<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

impl FrontMatter {
    fn find(text: &str) -> Result<FrontMatter, ParseError> {
        if text.is_empty() {
            return Err(ParseError::new(None, "empty file"));
        }
        // An editor's byte-order mark is not part of the first line's text.
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let (open_end, line_end) = match &text[bom..] {
            t if t.starts_with("---\r\n") => (bom + 5, "\r\n"),
            t if t.starts_with("---\n") => (bom + 4, "\n"),
            "---" => {
                return Err(ParseError::new(
                    Some(1),
                    "front matter is not closed: no second `---` line",
                ))
            }
            _ => {
                return Err(ParseError::new(
                    Some(1),
                    "no front matter: the first line is not `---`",
                ))
            }
        };
        let mut offset = open_end;
        for line in text[open_end..].split_inclusive('\n') {
            let bare = line.strip_suffix('\n').unwrap_or(line);
            let bare = bare.strip_suffix('\r').unwrap_or(bare);
            if bare == "---" {
                return Ok(FrontMatter {
                    open_end,
                    close_start: offset,
                    line_end,
                    first_line: 2,
                });
            }
            offset += line.len();
        }
        Err(ParseError::new(
            Some(1),
            "front matter is not closed: no second `---` line",
        ))
    }

    fn yaml<'a>(&self, text: &'a str) -> &'a str {
        &text[self.open_end..self.close_start]
    }

    fn lines<'a>(&self, text: &'a str) -> Vec<Line<'a>> {
        let mut start = self.open_end;
        let mut lines = Vec::new();
        for raw in self.yaml(text).split_inclusive('\n') {
            let bare = raw.strip_suffix('\n').unwrap_or(raw);
            let bare = bare.strip_suffix('\r').unwrap_or(bare);
            lines.push(Line {
                start,
                end: start + raw.len(),
                text: bare,
            });
            start += raw.len();
        }
        lines
    }
}

/// Whether `line` starts the top-level key `key` (column 0, `key:` then a space, a tab or
/// nothing).
fn is_top_level_key(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// The `related:` line plus the lines that belong to it: indented lines, and `-` items at
/// column 0 (a style YAML allows for a list under a top-level key). Blank lines and column-0
/// comments count only when more of the block follows them.
fn related_span_in(lines: &[Line<'_>]) -> Option<Range<usize>> {
    let index = lines
        .iter()
        .position(|l| is_top_level_key(l.text, "related"))?;
    let start = lines[index].start;
    let mut end = lines[index].end;
    for line in &lines[index + 1..] {
        let text = line.text;
        let continues = text.starts_with([' ', '\t']) && !text.trim().is_empty()
            || text == "-"
            || text.starts_with("- ")
            || text.starts_with("-\t");
        if continues {
            end = line.end;
        } else if !(text.trim().is_empty() || text.starts_with('#')) {
            break;
        }
    }
    Some(start..end)
}

/// The file line of the top-level key `key`, for error messages about its value.
fn top_level_key_line(yaml: &str, first_line: usize, key: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| {
            is_top_level_key(line, key)
                || is_top_level_key(line, &format!("\"{key}\""))
                || is_top_level_key(line, &format!("'{key}'"))
        })
        .map(|index| first_line + index)
}

/// Parses front-matter YAML into its top-level mapping. Error lines are file lines.
fn parse_mapping(yaml: &str, first_line: usize) -> Result<Mapping, ParseError> {
    if yaml.trim().is_empty() {
        return Ok(Mapping::new());
    }
    let value: Value = serde_yaml::from_str(yaml).map_err(|e| {
        let line = e.location().map(|l| l.line() + first_line - 1);
        ParseError::new(
            line,
            format!("invalid YAML: {}", strip_locations(&e.to_string())),
        )
    })?;
    match value {
        Value::Mapping(map) => Ok(map),
        Value::Null => Ok(Mapping::new()),
        _ => Err(ParseError::new(
            Some(first_line),
            "front matter is not a mapping of keys to values",
        )),
    }
}

/// Drops the parser's own "at line N column M" (counted from the start of the front matter, not
/// of the file) so that the only line a message shows is the file line.
fn strip_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " at line ".len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &after[digits..];
        match tail.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                rest = col.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses the spliced text again and checks that only `related` changed, and that it reads back
/// as `entries`.
fn check_splice(old_map: Mapping, new_text: &str, entries: &[Related]) -> Result<(), ParseError> {
    let fail = |why: &str| {
        ParseError::new(
            None,
            format!("could not rewrite the related block safely: {why}"),
        )
    };
    let layout = FrontMatter::find(new_text).map_err(|e| fail(&e.reason))?;
    let mut new_map =
        parse_mapping(layout.yaml(new_text), layout.first_line).map_err(|e| fail(&e.reason))?;
    let new_related = new_map.remove("related");
    let mut old_map = old_map;
    old_map.remove("related");
    if old_map != new_map {
        return Err(fail("another key would change"));
    }
    let read_back = related_list(new_related.unwrap_or(Value::Null)).map_err(|e| fail(&e))?;
    if read_back.as_deref().unwrap_or_default() != entries {
        return Err(fail("the new list does not read back as written"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// From YAML values to fields.

fn article_from_mapping(
    map: Mapping,
    source: Source,
    content_hash: u64,
    locate: &dyn Fn(&str) -> Option<usize>,
) -> Result<Article, ParseError> {
    let mut title = None;
    let mut article = Article {
        source,
        title: String::new(),
        excerpt: None,
        published_date_time: None,
        web_url: None,
        original_url: None,
        amp_web_url: None,
        cdn_amp_web_url: None,
        kind: None,
        category: None,
        quality: None,
        heat: None,
        published: None,
        provider: None,
        topics: Vec::new(),
        images: None,
        related: None,
        extra: BTreeMap::new(),
        content_hash,
    };
    for (key, value) in map {
        let key = key_text(&key).ok_or_else(|| {
            ParseError::new(None, "front matter has a key that is not a plain value")
        })?;
        let at = |reason: String| ParseError::new(locate(&key), reason);
        match key.as_str() {
            "title" => match untag(value) {
                Value::String(text) => title = Some(text),
                _ => return Err(at("`title` is not a string".into())),
            },
            "excerpt" => article.excerpt = text_field(value, &key).map_err(at)?,
            "publishedDateTime" => {
                article.published_date_time = time_field(value, &key).map_err(at)?
            }
            "webUrl" => article.web_url = text_field(value, &key).map_err(at)?,
            "originalUrl" => article.original_url = text_field(value, &key).map_err(at)?,
            "ampWebUrl" => article.amp_web_url = text_field(value, &key).map_err(at)?,
            "cdnAmpWebUrl" => article.cdn_amp_web_url = text_field(value, &key).map_err(at)?,
            "type" => article.kind = text_field(value, &key).map_err(at)?,
            "category" => article.category = text_field(value, &key).map_err(at)?,
            "quality" => article.quality = int_field(value, &key).map_err(at)?,
            "heat" => article.heat = int_field(value, &key).map_err(at)?,
            "published" => article.published = bool_field(value, &key).map_err(at)?,
            "provider" => article.provider = provider_field(value, &key).map_err(at)?,
            "topics" => article.topics = topics_field(value, &key).map_err(at)?,
            "images" => article.images = images_field(value, &key).map_err(at)?,
            "related" => article.related = related_list(value).map_err(at)?,
            _ => {
                article.extra.insert(key, value);
            }
        }
    }
    article.title = title.ok_or_else(|| ParseError::new(None, "`title` is missing"))?;
    Ok(article)
}

/// The text of a mapping key, when it is a scalar.
fn key_text(key: &Value) -> Option<String> {
    match untag_ref(key) {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

fn untag(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => untag(tagged.value),
        other => other,
    }
}

fn untag_ref(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag_ref(&tagged.value),
        other => other,
    }
}

/// Text, leniently: YAML reads an unquoted `2023` or `yes` as a number or a flag, though a
/// person meant text.
fn text_field(value: Value, key: &str) -> Result<Option<String>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        _ => Err(format!("`{key}` is not text")),
    }
}

fn int_field(value: Value, key: &str) -> Result<Option<i64>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::Number(number) if number.as_i64().is_some() => Ok(number.as_i64()),
        _ => Err(format!("`{key}` is not a whole number")),
    }
}

fn uint_field(value: Value, key: &str) -> Result<Option<u64>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::Number(number) if number.as_u64().is_some() => Ok(number.as_u64()),
        _ => Err(format!("`{key}` is not a whole number of at least 0")),
    }
}

fn bool_field(value: Value, key: &str) -> Result<Option<bool>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::Bool(flag) => Ok(Some(flag)),
        _ => Err(format!("`{key}` is not true or false")),
    }
}

fn time_field(value: Value, key: &str) -> Result<Option<DateTime<Utc>>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::String(text) => parse_timestamp(&text)
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a timestamp: {text:?}")),
        _ => Err(format!("`{key}` is not a timestamp")),
    }
}

fn provider_field(value: Value, key: &str) -> Result<Option<Provider>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::Mapping(mut map) => {
            let mut take = |name: &str| {
                text_field(
                    map.remove(name).unwrap_or(Value::Null),
                    &format!("{key}.{name}"),
                )
            };
            Ok(Some(Provider {
                name: take("name")?,
                domain: take("domain")?,
            }))
        }
        _ => Err(format!("`{key}` is not a mapping")),
    }
}

fn topics_field(value: Value, key: &str) -> Result<Vec<Option<String>>, String> {
    match untag(value) {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| text_field(item, &format!("{key} item")))
            .collect(),
        single @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            Ok(vec![text_field(single, key)?])
        }
        _ => Err(format!("`{key}` is not a list")),
    }
}

fn images_field(value: Value, key: &str) -> Result<Option<Vec<Image>>, String> {
    list_field(value, key, Image::try_from)
}

fn related_list(value: Value) -> Result<Option<Vec<Related>>, String> {
    list_field(value, "related", Related::try_from)
}

fn list_field<T>(
    value: Value,
    key: &str,
    item: impl Fn(Value) -> Result<T, ParseError>,
) -> Result<Option<Vec<T>>, String> {
    match untag(value) {
        Value::Null => Ok(None),
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                item(value).map_err(|e| format!("`{key}` item {}: {}", index + 1, e.reason))
            })
            .collect::<Result<Vec<T>, String>>()
            .map(Some),
        _ => Err(format!("`{key}` is not a list")),
    }
}

fn mapping_entries(value: Value, what: &str) -> Result<Vec<(String, Value)>, ParseError> {
    match untag(value) {
        Value::Mapping(map) => map
            .into_iter()
            .map(|(key, value)| {
                key_text(&key).map(|key| (key, value)).ok_or_else(|| {
                    ParseError::new(None, format!("{what} has a key that is not a plain value"))
                })
            })
            .collect(),
        _ => Err(ParseError::new(None, format!("{what} is not a mapping"))),
    }
}

impl TryFrom<Value> for Image {
    type Error = ParseError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let mut image = Image::default();
        let fail = |reason: String| ParseError::new(None, reason);
        for (key, value) in mapping_entries(value, "an image")? {
            match key.as_str() {
                "url" => image.url = text_field(value, &key).map_err(fail)?,
                "width" => image.width = uint_field(value, &key).map_err(fail)?,
                "height" => image.height = uint_field(value, &key).map_err(fail)?,
                "isCached" => image.is_cached = bool_field(value, &key).map_err(fail)?,
                _ => {
                    image.extra.insert(key, value);
                }
            }
        }
        Ok(image)
    }
}

impl TryFrom<Value> for Related {
    type Error = ParseError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let mut related = Related::default();
        let mut title = None;
        let fail = |reason: String| ParseError::new(None, reason);
        for (key, value) in mapping_entries(value, "an entry")? {
            match key.as_str() {
                "title" => title = text_field(value, &key).map_err(fail)?,
                "excerpt" => related.excerpt = text_field(value, &key).map_err(fail)?,
                "publishedDateTime" => {
                    related.published_date_time = time_field(value, &key).map_err(fail)?
                }
                "webUrl" => related.web_url = text_field(value, &key).map_err(fail)?,
                "ampWebUrl" => related.amp_web_url = text_field(value, &key).map_err(fail)?,
                "cdnAmpWebUrl" => {
                    related.cdn_amp_web_url = text_field(value, &key).map_err(fail)?
                }
                "type" => related.kind = text_field(value, &key).map_err(fail)?,
                "provider" => related.provider = provider_field(value, &key).map_err(fail)?,
                "quality" => related.quality = int_field(value, &key).map_err(fail)?,
                "images" => related.images = images_field(value, &key).map_err(fail)?,
                _ => {
                    related.extra.insert(key, value);
                }
            }
        }
        related.title = title.ok_or_else(|| fail("`title` is missing".into()))?;
        Ok(related)
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering, in the corpora's layout.

fn push_line(out: &mut String, indent: usize, text: &str, line_end: &str) {
    out.extend(std::iter::repeat_n(' ', indent));
    out.push_str(text);
    out.push_str(line_end);
}

/// Appends `body` (lines indented by `indent + 2`) as one list item at `indent`: the first line's
/// indent becomes `- `, the way the corpora write `  - title: ...`.
fn push_as_item(out: &mut String, indent: usize, body: &str, line_end: &str) {
    if body.is_empty() {
        push_line(out, indent, "- {}", line_end);
        return;
    }
    out.extend(std::iter::repeat_n(' ', indent));
    out.push_str("- ");
    out.push_str(&body[indent + 2..]);
}

fn push_related_fields(out: &mut String, indent: usize, entry: &Related, le: &str) {
    push_line(out, indent, &format!("title: {}", quoted(&entry.title)), le);
    if let Some(excerpt) = &entry.excerpt {
        push_line(out, indent, &format!("excerpt: {}", quoted(excerpt)), le);
    }
    if let Some(time) = entry.published_date_time {
        let text = format!("publishedDateTime: {}", format_timestamp(time));
        push_line(out, indent, &text, le);
    }
    for (key, url) in [
        ("webUrl", &entry.web_url),
        ("ampWebUrl", &entry.amp_web_url),
        ("cdnAmpWebUrl", &entry.cdn_amp_web_url),
    ] {
        if let Some(url) = url {
            push_line(out, indent, &format!("{key}: {}", quoted(url)), le);
        }
    }
    if let Some(kind) = &entry.kind {
        push_line(out, indent, &format!("type: {}", scalar(kind)), le);
    }
    if let Some(provider) = &entry.provider {
        if provider.name.is_none() && provider.domain.is_none() {
            push_line(out, indent, "provider: {}", le);
        } else {
            push_line(out, indent, "provider:", le);
            for (key, text) in [("name", &provider.name), ("domain", &provider.domain)] {
                if let Some(text) = text {
                    push_line(out, indent + 2, &format!("{key}: {}", scalar(text)), le);
                }
            }
        }
    }
    if let Some(quality) = entry.quality {
        push_line(out, indent, &format!("quality: {quality}"), le);
    }
    if let Some(images) = &entry.images {
        push_images(out, indent, images, le);
    }
    for (key, value) in &entry.extra {
        push_value_field(out, indent, &scalar(key), value, le);
    }
}

fn push_images(out: &mut String, indent: usize, images: &[Image], le: &str) {
    if images.is_empty() {
        push_line(out, indent, "images: []", le);
        return;
    }
    push_line(out, indent, "images:", le);
    for image in images {
        let inner = indent + 4;
        let mut body = String::new();
        if let Some(url) = &image.url {
            push_line(&mut body, inner, &format!("url: {}", quoted(url)), le);
        }
        if let Some(width) = image.width {
            push_line(&mut body, inner, &format!("width: {width}"), le);
        }
        if let Some(height) = image.height {
            push_line(&mut body, inner, &format!("height: {height}"), le);
        }
        if let Some(cached) = image.is_cached {
            push_line(&mut body, inner, &format!("isCached: {cached}"), le);
        }
        for (key, value) in &image.extra {
            push_value_field(&mut body, inner, &scalar(key), value, le);
        }
        push_as_item(out, indent + 2, &body, le);
    }
}

/// Renders `key: value` for a value of any shape (the extra keys of entries), in block style.
fn push_value_field(out: &mut String, indent: usize, key: &str, value: &Value, le: &str) {
    let (tag, inner) = match value {
        Value::Tagged(tagged) => (format!(" {}", tagged.tag), &tagged.value),
        other => (String::new(), other),
    };
    match inner {
        Value::Mapping(map) if !map.is_empty() => {
            push_line(out, indent, &format!("{key}:{tag}"), le);
            for (k, v) in map {
                push_value_field(out, indent + 2, &render_key(k), v, le);
            }
        }
        Value::Sequence(items) if !items.is_empty() => {
            push_line(out, indent, &format!("{key}:{tag}"), le);
            for item in items {
                push_value_item(out, indent + 2, item, le);
            }
        }
        _ => push_line(out, indent, &format!("{key}: {}", inline(value)), le),
    }
}

fn push_value_item(out: &mut String, indent: usize, value: &Value, le: &str) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            let mut body = String::new();
            for (k, v) in map {
                push_value_field(&mut body, indent + 2, &render_key(k), v, le);
            }
            push_as_item(out, indent, &body, le);
        }
        Value::Sequence(items) if !items.is_empty() => {
            let mut body = String::new();
            for item in items {
                push_value_item(&mut body, indent + 2, item, le);
            }
            push_as_item(out, indent, &body, le);
        }
        Value::Tagged(tagged)
            if matches!(&tagged.value, Value::Mapping(m) if !m.is_empty())
                || matches!(&tagged.value, Value::Sequence(s) if !s.is_empty()) =>
        {
            push_line(out, indent, &format!("- {}", tagged.tag), le);
            match &tagged.value {
                Value::Mapping(map) => {
                    for (k, v) in map {
                        push_value_field(out, indent + 2, &render_key(k), v, le);
                    }
                }
                Value::Sequence(items) => {
                    for item in items {
                        push_value_item(out, indent + 2, item, le);
                    }
                }
                _ => unreachable!("guarded above"),
            }
        }
        _ => push_line(out, indent, &format!("- {}", inline(value)), le),
    }
}

/// A value on one line: scalars, empty collections, and (for keys) flow collections.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => scalar(text),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, inline(&tagged.value)),
    }
}

/// Flow style, where plain text would be cut by `,`, `[` or `{`: every string is quoted.
fn flow(value: &Value) -> String {
    match value {
        Value::String(text) => quoted(text),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, flow(&tagged.value)),
        other => inline(other),
    }
}

fn render_key(key: &Value) -> String {
    match key {
        Value::String(text) => scalar(text),
        Value::Sequence(_) | Value::Mapping(_) => flow(key),
        other => inline(other),
    }
}

/// A string plain when a YAML reader would give back the same string, double-quoted otherwise.
fn scalar(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_owned()
    } else {
        quoted(text)
    }
}

/// Whether `text` can be written as a plain scalar and read back unchanged as a string, by this
/// parser and by YAML 1.1 readers (which also take `yes`, `on` and dates as non-strings). Errs
/// on the side of quoting.
fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if first == ' ' || text.ends_with(' ') || "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if text.contains(": ") || text.contains(" #") || text.ends_with(':') {
        return false;
    }
    let printable = |c: char| {
        matches!(c, ' '..='~')
            || matches!(c, '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
                && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
    };
    if !text.chars().all(printable) {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "n"
            | "yes"
            | "no"
            | "true"
            | "false"
            | "on"
            | "off"
            | "null"
            | "~"
            | "<<"
            | "="
            | ".inf"
            | "+.inf"
            | ".nan"
    ) {
        return false;
    }
    let bytes = text.as_bytes();
    let numeric_start = bytes[0].is_ascii_digit()
        || (matches!(bytes[0], b'+' | b'.')
            && bytes
                .get(1)
                .is_some_and(|b| b.is_ascii_digit() || *b == b'.'));
    // Numbers and dates in any YAML version: 0x1F, 1_000, 1e3, 1:20, 2021-05-11 21:59:43.10 -5.
    let number_like = numeric_start
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO_.:+-tTzZ ".contains(c));
    // No parser call here: splice_related parses what it wrote and refuses a list that does not
    // read back, so a case these rules miss is an error, not a changed value.
    !number_like
}

/// A double-quoted scalar. Non-ASCII text stays as it is (the corpora keep `’` raw); what a
/// reader would not take raw is escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let plain = |c: char| {
        c >= ' '
            && !matches!(
                c,
                '"' | '\\' | '\u{7f}'
                    ..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
    };
    if text.chars().all(plain) {
        out.push_str(text);
        out.push('"');
        return out;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c < ' ' || matches!(c, '\u{7f}'..='\u{9f}') => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn file(path: &str) -> Source {
        Source::File(PathBuf::from(path))
    }

    const SMALL: &str = "---\ntitle: \"A\"\nexcerpt: \"B\"\n\nrelated:\n  - title: \"X\"\n\nsecured: \"s\"\n---\nbody\n";

    #[test]
    fn quoting_follows_the_corpora() {
        assert_eq!(scalar("Forbes"), "Forbes");
        assert_eq!(scalar("Rock, Paper, Shotgun"), "Rock, Paper, Shotgun");
        assert_eq!(scalar("Tom's Guide"), "Tom's Guide");
        assert_eq!(scalar("9to5mac.com"), "9to5mac.com");
        for ambiguous in [
            "",
            "true",
            "Yes",
            "null",
            "~",
            "123",
            "1.5",
            "0x1F",
            "2021-05-11",
            "1:20",
            " a",
            "a ",
            "- a",
            "a: b",
            "a #b",
            "#a",
            "'a",
            "\"a",
            "a:",
            "[a",
            "{a",
            "*a",
            "&a",
            "!a",
            "|",
            ">",
            "%a",
            "@a",
            "`a",
            "---",
            ".inf",
            "a\nb",
            "a\tb",
        ] {
            assert!(
                scalar(ambiguous).starts_with('"'),
                "{ambiguous:?} must be quoted"
            );
        }
        assert_eq!(
            quoted("a\"b\\c\n\u{1}\u{2028}"),
            "\"a\\\"b\\\\c\\n\\x01\\L\""
        );
    }

    #[test]
    fn timestamps_render_like_the_files() {
        let t = Utc.with_ymd_and_hms(2021, 5, 11, 16, 27, 0).unwrap();
        assert_eq!(format_timestamp(t), "2021-05-11T16:27:00Z");
        let frac = t + chrono::Duration::milliseconds(250);
        assert_eq!(format_timestamp(frac), "2021-05-11T16:27:00.250Z");
        assert_eq!(parse_timestamp("2021-05-11T18:27:00+02:00"), Some(t));
        assert_eq!(parse_timestamp("2021-05-11 16:27:00"), Some(t));
        assert_eq!(
            parse_timestamp("2021-05-11"),
            Some(Utc.with_ymd_and_hms(2021, 5, 11, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn renders_an_entry_in_the_seed_layout() {
        let entry = Related {
            title: "T \"q\"".into(),
            excerpt: Some("E".into()),
            published_date_time: Some(Utc.with_ymd_and_hms(2021, 5, 11, 16, 27, 0).unwrap()),
            web_url: Some("https://a/".into()),
            kind: Some("article".into()),
            provider: Some(Provider {
                name: Some("Forbes".into()),
                domain: Some("forbes.com".into()),
            }),
            quality: Some(65),
            images: Some(vec![Image {
                url: Some("https://i/".into()),
                width: Some(1200),
                height: Some(799),
                is_cached: Some(true),
                extra: BTreeMap::new(),
            }]),
            ..Related::default()
        };
        let expected = "related:\n  - title: \"T \\\"q\\\"\"\n    excerpt: \"E\"\n    publishedDateTime: 2021-05-11T16:27:00Z\n    webUrl: \"https://a/\"\n    type: article\n    provider:\n      name: Forbes\n      domain: forbes.com\n    quality: 65\n    images:\n      - url: \"https://i/\"\n        width: 1200\n        height: 799\n        isCached: true\n";
        assert_eq!(render_related_block(&[entry], "\n"), expected);
        assert_eq!(render_related_block(&[], "\r\n"), "related: []\r\n");
    }

    #[test]
    fn extra_keys_render_and_read_back() {
        let mut extra = BTreeMap::new();
        let nested: Value =
            serde_yaml::from_str("{a: [1, {b: \"x: y\"}, []], c: {}, d: null, e: !t 3}").unwrap();
        extra.insert("more".to_string(), nested);
        extra.insert("true".to_string(), Value::String("yes".into()));
        let entry = Related {
            title: "t".into(),
            extra,
            images: Some(vec![Image::default()]),
            ..Related::default()
        };
        let out = splice_related(SMALL, std::slice::from_ref(&entry)).unwrap();
        let back = parse_article(&out, file("x")).unwrap();
        assert_eq!(back.related, Some(vec![entry]));
    }

    #[test]
    fn splice_replaces_only_the_block() {
        let entry = Related {
            title: "Y".into(),
            ..Related::default()
        };
        let out = splice_related(SMALL, &[entry]).unwrap();
        assert_eq!(
            out,
            "---\ntitle: \"A\"\nexcerpt: \"B\"\n\nrelated:\n  - title: \"Y\"\n\nsecured: \"s\"\n---\nbody\n"
        );
    }

    #[test]
    fn splice_inserts_before_secured_or_at_the_end() {
        let entry = Related {
            title: "Y".into(),
            ..Related::default()
        };
        let with_secured = "---\ntitle: \"A\"\n\nsecured: \"s\"\n---\n";
        assert_eq!(
            splice_related(with_secured, std::slice::from_ref(&entry)).unwrap(),
            "---\ntitle: \"A\"\n\nrelated:\n  - title: \"Y\"\n\nsecured: \"s\"\n---\n"
        );
        let tight = "---\ntitle: \"A\"\nsecured: \"s\"\n---\n";
        assert_eq!(
            splice_related(tight, std::slice::from_ref(&entry)).unwrap(),
            "---\ntitle: \"A\"\nrelated:\n  - title: \"Y\"\nsecured: \"s\"\n---\n"
        );
        let bare = "---\r\ntitle: A\r\n---\r\n";
        assert_eq!(
            splice_related(bare, std::slice::from_ref(&entry)).unwrap(),
            "---\r\ntitle: A\r\nrelated:\r\n  - title: \"Y\"\r\n---\r\n"
        );
        let spaced = "---\ntitle: A\n\ntopics:\n  - x\n---\n";
        assert_eq!(
            splice_related(spaced, &[entry]).unwrap(),
            "---\ntitle: A\n\ntopics:\n  - x\n\nrelated:\n  - title: \"Y\"\n---\n"
        );
    }

    #[test]
    fn block_at_column_zero_and_comments_are_found() {
        let text = "---\ntitle: A\nrelated:\n- title: X\n  quality: 3\n\n# note\n- title: Z\n# after\n\nheat: 1\n---\n";
        let span = related_block_span(text).unwrap().unwrap();
        assert_eq!(
            &text[span],
            "related:\n- title: X\n  quality: 3\n\n# note\n- title: Z\n"
        );
        let out = splice_related(text, &[]).unwrap();
        assert_eq!(out, "---\ntitle: A\nrelated: []\n# after\n\nheat: 1\n---\n");
        let inline = "---\ntitle: A\nrelated: []\nheat: 1\n---\n";
        let span = related_block_span(inline).unwrap().unwrap();
        assert_eq!(&inline[span], "related: []\n");
    }

    #[test]
    fn parse_errors_name_the_file_line() {
        let err = parse_article("---\ntitle: A\nexcerpt: [\n---\n", file("x")).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.reason.starts_with("invalid YAML"), "{err}");
        assert!(!err.reason.contains("line"), "{err}");
        let err = parse_article("---\ncategory: news\ntitle: 5\n---\n", file("x")).unwrap_err();
        assert_eq!(err.line, Some(3));
        let err = parse_article("---\ncategory: news\n---\n", file("x")).unwrap_err();
        assert_eq!(err.reason, "`title` is missing");
        let err = parse_article("title: x\n", file("x")).unwrap_err();
        assert!(err.reason.starts_with("no front matter"));
        let err = parse_article("---\ntitle: x\n", file("x")).unwrap_err();
        assert!(err.reason.starts_with("front matter is not closed"));
        assert_eq!(
            parse_article("", file("x")).unwrap_err().reason,
            "empty file"
        );
        let err = parse_article("---\nquality: high\ntitle: x\n---\n", file("x")).unwrap_err();
        assert_eq!(err.line, Some(2));
        let err = parse_article("---\ntitle: a\ntitle: b\n---\n", file("x")).unwrap_err();
        assert!(err.reason.contains("duplicate"), "{err}");
        let err = parse_article("---\n# only a comment\n---\n", file("x")).unwrap_err();
        assert_eq!(err.reason, "`title` is missing");
        let err =
            parse_article("---\ntitle: a\nrelated:\n  - excerpt: b\n---\n", file("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: `related` item 1: `title` is missing"
        );
        let err = parse_article("---\n- a\n---\n", file("x")).unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn lenient_where_yaml_guesses_types() {
        let text = "---\ntitle: \"T\"\ncategory: 2023\ntopics:\n  - \n  - AI\n  - 42\npublishedDateTime: \"2021-05-10T07:01:00Z\"\n---\n";
        let article = parse_article(text, file("x")).unwrap();
        assert_eq!(article.category.as_deref(), Some("2023"));
        assert_eq!(
            article.topics,
            vec![None, Some("AI".into()), Some("42".into())]
        );
        assert_eq!(
            article.published_date_time,
            Some(Utc.with_ymd_and_hms(2021, 5, 10, 7, 1, 0).unwrap())
        );
    }

    #[test]
    fn text_and_titles() {
        let mut article = parse_article("---\ntitle: \"Big News!\"\n---\n", file("x")).unwrap();
        assert_eq!(article.text(), "Big News!");
        article.excerpt = Some("More.".into());
        assert_eq!(article.text(), "Big News!. More.");
        assert_eq!(article.normalized_title(), "big news");
        assert_eq!(normalize_title("  Diablo IV — “Beta” "), "diablo iv beta");
        let json = parse_json_article(
            r#"{"title":"J","publishedDateTime":"2021-05-10T07:01:00Z","quality":3}"#,
            Source::JsonLine {
                path: "c.jsonl".into(),
                line: 7,
            },
        )
        .unwrap();
        assert_eq!(json.display_path(), "c.jsonl:7");
        assert_eq!(json.quality, Some(3));
    }

    #[test]
    fn strip_locations_keeps_the_message() {
        assert_eq!(
            strip_locations("did not find expected key at line 3 column 1, while parsing a block mapping at line 1 column 1"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(strip_locations("at line x"), "at line x");
    }
}
