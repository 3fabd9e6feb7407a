//! From YAML values to fields.
//!
//! Front matter and JSON Lines both arrive as YAML values; reading those into typed fields lives in
//! one place so that both formats (and a `related:` list deserialised on its own) follow the same
//! lenient rules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_yaml::{Mapping, Value};

use super::timestamp::parse_timestamp;
use super::{Article, Control, Image, ParseError, Provider, Related, Source};

pub(super) fn article_from_mapping(
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
        control: Control::default(),
        control_line: None,
        extra: BTreeMap::new(),
        content_hash,
        related_hash: 0,
        stamp: None,
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
            "relink" => {
                article.control = control_field(value).map_err(at)?;
                article.control_line = locate(&key);
            }
            _ => {
                article.extra.insert(key, value);
            }
        }
    }
    article.title = title.ok_or_else(|| ParseError::new(None, "`title` is missing"))?;
    article.related_hash = crate::state::list_hash(article.related.as_deref().unwrap_or(&[]));
    Ok(article)
}

/// The `relink:` map: `pin` and `block` (lists of strings, or one string), `lock` (a
/// boolean). An unknown key is an error rather than ignored: a misspelt `lock` must not let a
/// refresh rewrite a list an editor meant to keep.
pub(super) fn control_field(value: Value) -> Result<Control, String> {
    let map = match untag(value) {
        Value::Null => return Ok(Control::default()),
        Value::Mapping(map) => map,
        _ => return Err("`relink` is not a mapping (pin, block, lock)".into()),
    };
    let targets = |value: Value, key: &str| -> Result<Vec<String>, String> {
        let items = match untag(value) {
            Value::Null => Vec::new(),
            Value::String(s) => vec![Value::String(s)],
            Value::Sequence(items) => items,
            _ => return Err(format!("`relink.{key}` is not a list of URLs or paths")),
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for (n, item) in items.into_iter().enumerate() {
            match untag(item) {
                Value::String(s) if !s.trim().is_empty() => {
                    let s = s.trim().to_string();
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                _ => return Err(format!("`relink.{key}` item {}: not a URL or path", n + 1)),
            }
        }
        Ok(out)
    };
    let mut control = Control::default();
    for (key, value) in map {
        match key_text(&key).as_deref() {
            Some("pin") => control.pin = targets(value, "pin")?,
            Some("block") => control.block = targets(value, "block")?,
            Some("lock") => {
                control.lock = bool_field(value, "relink.lock")?.unwrap_or(false);
            }
            Some(other) => {
                return Err(format!(
                    "`relink` has an unknown key `{other}` (pin, block, lock)"
                ))
            }
            None => return Err("`relink` has a key that is not a plain value".into()),
        }
    }
    Ok(control)
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

pub(super) fn related_list(value: Value) -> Result<Option<Vec<Related>>, String> {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::article::parse_article;
    use crate::article::tests::file;

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
}
