//! Rendering, in the corpora's layout.
//!
//! A rewrite must give back the bytes a file already holds when its list is unchanged, so the
//! block is written by hand in the corpora's own style rather than by a YAML serialiser.

use serde_yaml::Value;

use super::timestamp::format_timestamp;
use super::{Control, Image, Related};

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

/// Renders a `relink:` block, ending with `line_end`; empty for a control that sets nothing
/// (the block is then removed).
pub fn render_control_block(control: &Control, line_end: &str) -> String {
    if control.is_empty() {
        return String::new();
    }
    let mut out = format!("relink:{line_end}");
    for (key, targets) in [("pin", &control.pin), ("block", &control.block)] {
        if targets.is_empty() {
            continue;
        }
        push_line(&mut out, 2, &format!("{key}:"), line_end);
        for target in targets {
            push_line(&mut out, 4, &format!("- {}", quoted(target)), line_end);
        }
    }
    if control.lock {
        push_line(&mut out, 2, "lock: true", line_end);
    }
    out
}

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
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::article::Provider;

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
}
