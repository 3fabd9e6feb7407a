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

mod fields;
mod layout;
mod render;
mod timestamp;

pub use layout::{
    front_matter_json, parse_article, parse_json_article, related_block_span, splice_control,
    splice_related, splice_related_if_changed,
};
pub use render::{render_control_block, render_related_block};
pub use timestamp::{format_timestamp, parse_timestamp};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// An editor's say over one article's list, kept in its `relink:` map:
///
/// ```yaml
/// relink:
///   pin:
///     - "https://example.com/always-first"
///   block:
///     - "archive/2019/old-story.md"
///   lock: true
/// ```
///
/// Targets are named by `webUrl`, else by path relative to the corpus folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Articles that open the list, in this order, whatever their score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pin: Vec<String>,
    /// Articles that never enter the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block: Vec<String>,
    /// relink never rewrites the list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lock: bool,
}

impl Control {
    /// No pin, no block, no lock: what a file without a `relink:` map has.
    pub fn is_empty(&self) -> bool {
        self.pin.is_empty() && self.block.is_empty() && !self.lock
    }

    /// Whether the list depends on other articles through this control (pins and blocks name
    /// them).
    pub fn names_targets(&self) -> bool {
        !self.pin.is_empty() || !self.block.is_empty()
    }
}

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
    /// No source yet (an article read back from a record, before its path is set).
    fn unknown() -> Source {
        Source::File(PathBuf::new())
    }

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
///
/// It serialises (for the per-file records of the state folder) without its source, its stored
/// list (only that list's hash is kept), the other keys and its stamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Article {
    /// Where it was read from.
    #[serde(skip, default = "Source::unknown")]
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
    /// The stored related list; `None` when the file has no `related` key (or a null one), and
    /// when the article comes from a per-file record rather than its file.
    #[serde(skip)]
    pub related: Option<Vec<Related>>,
    /// [`crate::state::list_hash`] of the stored list (an absent list hashes as an empty one).
    pub related_hash: u64,
    /// What an editor set in the `relink:` map: pins, blocks, lock.
    #[serde(default, skip_serializing_if = "Control::is_empty")]
    pub control: Control,
    /// The file line of the `relink:` key, for reports about its targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_line: Option<usize>,
    /// Every other top-level key (`featuredContent`, `secured`, ...), kept.
    #[serde(skip)]
    pub extra: BTreeMap<String, Value>,
    /// xxh3 of the bytes as read (for JSON Lines: of the line, without its line end), so that a
    /// writer can tell whether the file was edited after it was read.
    pub content_hash: u64,
    /// The file's identity and times when it was read (front-matter files read from disk).
    #[serde(skip)]
    pub stamp: Option<crate::fsutil::FileStamp>,
}

impl Article {
    /// The text that is embedded: title, then `". "` and the excerpt when there is a non-blank
    /// one.
    ///
    /// The excerpt is cut at [`MAX_EMBEDDED_EXCERPT`] characters: the model reads only its first
    /// few hundred tokens anyway, and a runaway field should not cost tokenising megabytes.
    pub fn text(&self) -> String {
        match self.excerpt.as_deref() {
            Some(excerpt) if !excerpt.trim().is_empty() => format!(
                "{}. {}",
                self.title,
                cut_at_chars(excerpt, MAX_EMBEDDED_EXCERPT)
            ),
            _ => self.title.clone(),
        }
    }

    /// Whether the excerpt is longer than a related entry carries ([`MAX_ENTRY_EXCERPT`]).
    pub fn excerpt_is_oversized(&self) -> bool {
        self.excerpt
            .as_deref()
            .is_some_and(|e| longer_than(e, MAX_ENTRY_EXCERPT))
    }

    /// Whether the title is longer than a related entry carries ([`MAX_ENTRY_TITLE`]).
    pub fn title_is_oversized(&self) -> bool {
        longer_than(&self.title, MAX_ENTRY_TITLE)
    }

    /// The entry another article's `related:` list carries for this one. Fields this article
    /// lacks are absent from the entry too. The title is cut at [`MAX_ENTRY_TITLE`] characters
    /// and the excerpt at [`MAX_ENTRY_EXCERPT`] (each with `…`), so that one oversized article
    /// does not grow every file that links to it by its whole size.
    pub fn to_related(&self) -> Related {
        Related {
            title: shortened(&self.title, MAX_ENTRY_TITLE),
            excerpt: self
                .excerpt
                .as_deref()
                .map(|e| shortened(e, MAX_ENTRY_EXCERPT)),
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

/// The longest excerpt, in characters, a related entry carries: real news excerpts stay under
/// 400.
pub const MAX_ENTRY_EXCERPT: usize = 1_000;

/// The longest title, in characters, a related entry carries: real news titles stay under 200.
pub const MAX_ENTRY_TITLE: usize = 300;

/// Whether `text` has more than `n` characters (counted only when its bytes could be more).
fn longer_than(text: &str, n: usize) -> bool {
    text.len() > n && text.chars().count() > n
}

/// `text`, or, when it is longer than `n` characters, its first `n - 1` and `…`.
fn shortened(text: &str, n: usize) -> String {
    if longer_than(text, n) {
        format!("{}…", cut_at_chars(text, n - 1).trim_end())
    } else {
        text.to_string()
    }
}

/// The longest excerpt, in characters, that is embedded.
pub const MAX_EMBEDDED_EXCERPT: usize = 4_000;

/// The first `n` characters of `text`.
fn cut_at_chars(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[..at],
        None => text,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A front-matter source; the tests of the other parts share it.
    pub(super) fn file(path: &str) -> Source {
        Source::File(PathBuf::from(path))
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
}
