//! Locating the front matter and the related block, and splicing a new block in.
//!
//! Writing never re-serialises the front matter: the text is cut at byte offsets found here, so
//! everything outside the `related:` block keeps its bytes. Finding those offsets and checking the
//! result read back as intended are one job, kept apart from what the fields mean.

use std::ops::Range;
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::fields::{article_from_mapping, control_field, related_list};
use super::render::{render_control_block, render_related_block};
use super::{Article, Control, ParseError, Related, Source};

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

/// The front matter of an article file as a JSON object with its own field names, which is
/// what a JSON Lines article holds (`relink export`). A front matter that JSON cannot hold (a
/// key that is not a string) is an error.
pub fn front_matter_json(
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ParseError> {
    let layout = FrontMatter::find(text)?;
    let map = parse_mapping(layout.yaml(text), layout.first_line)?;
    match serde_json::to_value(&map) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err(ParseError::new(None, "the front matter is not a mapping")),
        Err(e) => Err(ParseError::new(
            None,
            format!("the front matter cannot be written as JSON: {e}"),
        )),
    }
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
    let (layout, old_map, article) = read_for_splice(original)?;
    if article.related.as_deref().unwrap_or_default() == entries {
        return Ok(None);
    }
    splice_parsed(original, &layout, old_map, entries).map(Some)
}

/// Parses a file about to be rewritten: its layout, its top-level mapping (to check the splice
/// against) and the article it holds. A file that does not read as an article is refused, so
/// that a writer never touches a file a reader would report as broken.
fn read_for_splice(original: &str) -> Result<(FrontMatter, Mapping, Article), ParseError> {
    let layout = FrontMatter::find(original)?;
    let yaml = layout.yaml(original);
    let map = parse_mapping(yaml, layout.first_line)?;
    let locate = |key: &str| top_level_key_line(yaml, layout.first_line, key);
    let article = article_from_mapping(map.clone(), Source::File(PathBuf::new()), 0, &locate)?;
    Ok((layout, map, article))
}

fn splice_parsed(
    original: &str,
    layout: &FrontMatter,
    old_map: Mapping,
    entries: &[Related],
) -> Result<String, ParseError> {
    let block = render_related_block(entries, layout.line_end);
    let out = splice_block(original, layout, "related", &["secured"], true, block);
    check_splice(old_map, &out, "related", |value| {
        let read_back = related_list(value.unwrap_or(Value::Null))?;
        if read_back.as_deref().unwrap_or_default() != entries {
            return Err("the new list does not read back as written".into());
        }
        Ok(())
    })?;
    Ok(out)
}

/// Returns `original` with its `relink:` block replaced by one rendered from `control` (removed
/// when the control sets nothing), or `None` when the file already holds that control. A new
/// block goes before `related:`, else before `secured:`, else at the end of the front matter.
/// Every other byte is kept, and the result is parsed again and checked, as for
/// [`splice_related`].
pub fn splice_control(original: &str, control: &Control) -> Result<Option<String>, ParseError> {
    let (layout, old_map, article) = read_for_splice(original)?;
    if &article.control == control && (!control.is_empty() || !old_map.contains_key("relink")) {
        return Ok(None);
    }
    let block = render_control_block(control, layout.line_end);
    // Inserted without a blank line of its own, so that taking the block away again gives
    // back the file's bytes.
    let out = splice_block(
        original,
        &layout,
        "relink",
        &["related", "secured"],
        false,
        block,
    );
    check_splice(old_map, &out, "relink", |value| {
        let read_back = control_field(value.unwrap_or(Value::Null))?;
        if &read_back != control {
            return Err("the new `relink` map does not read back as written".into());
        }
        Ok(())
    })?;
    Ok(Some(out))
}

/// `original` with the top-level block `key` replaced by `block` (a rendered block with its
/// line ends, or empty to remove it). Without such a block, `block` goes before the first of
/// the top-level keys `before` the file has; with none of them, at the end of the front
/// matter. `separate`: set the new block apart with a blank line where the file separates its
/// sections so.
fn splice_block(
    original: &str,
    layout: &FrontMatter,
    key: &str,
    before: &[&str],
    separate: bool,
    block: String,
) -> String {
    let line_end = layout.line_end;
    let lines = layout.lines(original);
    let next_key = || {
        before
            .iter()
            .find_map(|k| lines.iter().position(|l| is_top_level_key(l.text, k)))
    };
    let (at, end, insert) = if let Some(span) = block_span_in(&lines, key) {
        (span.start, span.end, block)
    } else if block.is_empty() {
        (layout.close_start, layout.close_start, block)
    } else if let Some(i) = next_key() {
        let blank_before = separate && i > 0 && lines[i - 1].text.trim().is_empty();
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
        let insert = if separate && uses_blank_lines && last_is_text {
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
    out
}

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
    block_span_in(lines, "related")
}

/// The top-level `key:` line plus the lines that belong to it (see [`related_span_in`]).
fn block_span_in(lines: &[Line<'_>], key: &str) -> Option<Range<usize>> {
    let index = lines.iter().position(|l| is_top_level_key(l.text, key))?;
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
        // Limits on aliases (a "billion laughs" file) and nesting are hit after parsing, with
        // no position: the first alias is the best line to show, else where the front matter
        // starts; a message names a line either way.
        let line = e
            .location()
            .map(|l| l.line())
            .or_else(|| first_alias_line(yaml))
            .map(|l| l + first_line - 1)
            .or(Some(first_line));
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

/// The line (1-based, within `yaml`) of the first alias (`*name` where a value starts).
fn first_alias_line(yaml: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| {
            let b = line.as_bytes();
            (0..b.len()).any(|i| {
                b[i] == b'*'
                    && (i == 0 || matches!(b[i - 1], b' ' | b'[' | b',' | b'{'))
                    && b.get(i + 1)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            })
        })
        .map(|i| i + 1)
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

/// Parses the spliced text again and checks that only the top-level `key` changed, and that
/// its new value passes `check`.
fn check_splice(
    old_map: Mapping,
    new_text: &str,
    key: &str,
    check: impl Fn(Option<Value>) -> Result<(), String>,
) -> Result<(), ParseError> {
    let fail = |why: &str| {
        ParseError::new(
            None,
            format!("could not rewrite the {key} block safely: {why}"),
        )
    };
    let layout = FrontMatter::find(new_text).map_err(|e| fail(&e.reason))?;
    let mut new_map =
        parse_mapping(layout.yaml(new_text), layout.first_line).map_err(|e| fail(&e.reason))?;
    let new_value = new_map.remove(key);
    let mut old_map = old_map;
    old_map.remove(key);
    if old_map != new_map {
        return Err(fail("another key would change"));
    }
    check(new_value).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::article::tests::file;
    use crate::article::Image;

    const SMALL: &str = "---\ntitle: \"A\"\nexcerpt: \"B\"\n\nrelated:\n  - title: \"X\"\n\nsecured: \"s\"\n---\nbody\n";

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
    fn control_block_goes_in_and_comes_out() {
        let pinned = Control {
            pin: vec!["https://x.com/a".into()],
            block: vec!["b c.md".into()],
            lock: true,
        };
        let out = splice_control(SMALL, &pinned).unwrap().unwrap();
        assert_eq!(
            out,
            "---\ntitle: \"A\"\nexcerpt: \"B\"\n\nrelink:\n  pin:\n    - \"https://x.com/a\"\n  block:\n    - \"b c.md\"\n  lock: true\nrelated:\n  - title: \"X\"\n\nsecured: \"s\"\n---\nbody\n"
        );
        assert_eq!(splice_control(&out, &pinned).unwrap(), None);
        assert_eq!(
            splice_control(&out, &Control::default()).unwrap().unwrap(),
            SMALL
        );
        // A map written by hand in flow style is replaced whole; a CRLF file stays CRLF.
        let flow = "---\r\ntitle: A\r\nrelink: {lock: true}\r\n---\r\n";
        let lock_only = Control {
            lock: true,
            ..Control::default()
        };
        assert_eq!(parse_article(flow, file("x")).unwrap().control, lock_only);
        assert_eq!(
            splice_control(flow, &Control::default()).unwrap().unwrap(),
            "---\r\ntitle: A\r\n---\r\n"
        );
        assert_eq!(
            splice_control("---\r\ntitle: A\r\n---\r\n", &lock_only)
                .unwrap()
                .unwrap(),
            "---\r\ntitle: A\r\nrelink:\r\n  lock: true\r\n---\r\n"
        );
        // Bad maps name their line.
        let err =
            parse_article("---\ntitle: A\nrelink:\n  lock: maybe\n---\n", file("x")).unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let err = parse_article("---\ntitle: A\nrelink: [a]\n---\n", file("x")).unwrap_err();
        assert!(err.reason.contains("not a mapping"), "{err}");
        let err =
            parse_article("---\ntitle: A\nrelink:\n  pin: [1]\n---\n", file("x")).unwrap_err();
        assert!(err.reason.contains("`relink.pin` item 1"), "{err}");
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
