//! Editorial control: what editors pin, block and lock in an article's `relink:` map
//! ([`crate::article::Control`]), and the corpus-wide rules of `relink.toml` ([`Rules`]),
//! resolved against a corpus into what the ranker applies ([`Editorial`]).
//!
//! A pin or block names its target by `webUrl` (or `originalUrl`), else by path relative to the
//! corpus folder. A target that names no article is reported with the file and line of its
//! `relink:` map, and otherwise ignored: it never stops a refresh.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::article::{Article, Source};
use crate::rank::normalize_url;

/// Corpus-wide rules, from `relink.toml`:
///
/// ```toml
/// block-domains = ["example.com"]          # a provider's domain or a URL's host, subdomains too
/// block-urls = ["https://example.com/a"]   # compared without scheme, www., query or fragment
/// max-age-days = 365                       # never recommend what is older than this, relative
///                                          # to the article the list is for
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rules {
    pub block_domains: Vec<String>,
    pub block_urls: Vec<String>,
    pub max_age_days: Option<f64>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.block_domains.is_empty() && self.block_urls.is_empty() && self.max_age_days.is_none()
    }

    /// Whether the rules keep `article` out of every list.
    pub fn blocks(&self, article: &Article) -> bool {
        let domains: Vec<String> = self.block_domains.iter().map(|d| bare_domain(d)).collect();
        let urls: Vec<String> = self.block_urls.iter().map(|u| normalize_url(u)).collect();
        blocked_by(article, &domains, &urls)
    }
}

/// A domain as compared: lower case, without scheme, `www.`, path or port.
fn bare_domain(d: &str) -> String {
    let host = normalize_url(d);
    let host = host.split(['/', ':']).next().unwrap_or("");
    host.to_string()
}

fn blocked_by(article: &Article, domains: &[String], urls: &[String]) -> bool {
    let url_hit = |u: &Option<String>| {
        u.as_deref()
            .map(normalize_url)
            .is_some_and(|u| urls.contains(&u))
    };
    if url_hit(&article.web_url) || url_hit(&article.original_url) {
        return true;
    }
    let under = |host: &str| {
        domains
            .iter()
            .any(|d| !d.is_empty() && (host == d || host.ends_with(&format!(".{d}"))))
    };
    let provider_domain = article
        .provider
        .as_ref()
        .and_then(|p| p.domain.as_deref())
        .map(bare_domain);
    let url_host = |u: &Option<String>| u.as_deref().map(bare_domain);
    [
        provider_domain,
        url_host(&article.web_url),
        url_host(&article.original_url),
    ]
    .iter()
    .flatten()
    .any(|h| under(h))
}

/// A pin or block that names no article, or names the article itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The article whose `relink:` map holds it.
    pub article: usize,
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Editorial control resolved against one corpus: article positions instead of names.
#[derive(Clone, Debug, Default)]
pub struct Editorial {
    /// Per article with pins: the pinned articles, in order.
    pub pins: HashMap<usize, Vec<usize>>,
    /// Per article with blocks: the blocked articles, sorted.
    pub blocks: HashMap<usize, Vec<usize>>,
    /// Articles whose lists are locked.
    pub locked: Vec<bool>,
    /// Articles the corpus rules keep out of every list (empty when no rule blocks any).
    pub ruled_out: Vec<bool>,
    /// From `max-age-days`.
    pub max_age: Option<Duration>,
    /// Targets that name no article.
    pub problems: Vec<Problem>,
}

impl Editorial {
    /// Resolves every article's `relink:` map and the corpus `rules` against `articles`, read
    /// from the corpus folder `root`.
    pub fn resolve(root: &Path, articles: &[Article], rules: &Rules) -> Editorial {
        let mut out = Editorial {
            locked: articles.iter().map(|a| a.control.lock).collect(),
            max_age: rules
                .max_age_days
                .map(|d| Duration::milliseconds((d * 86_400_000.0).round() as i64)),
            ..Editorial::default()
        };
        if !rules.block_domains.is_empty() || !rules.block_urls.is_empty() {
            out.ruled_out = articles.iter().map(|a| rules.blocks(a)).collect();
            if !out.ruled_out.iter().any(|&b| b) {
                out.ruled_out.clear();
            }
        }
        if !articles.iter().any(|a| a.control.names_targets()) {
            return out;
        }
        let names = Names::of(root, articles);
        for (i, a) in articles.iter().enumerate() {
            let mut resolve = |targets: &[String], what: &str| -> Vec<usize> {
                let mut found = Vec::new();
                for t in targets {
                    let problem = match names.find(t) {
                        Some(j) if j == i => Some("names the article itself"),
                        Some(j) => {
                            if !found.contains(&j) {
                                found.push(j);
                            }
                            None
                        }
                        None => Some("no article of the corpus has this URL or path"),
                    };
                    if let Some(why) = problem {
                        out.problems.push(Problem {
                            article: i,
                            path: a.display_path(),
                            line: a.control_line,
                            message: format!("relink.{what} {t}: {why}; ignored"),
                        });
                    }
                }
                found
            };
            let pins = resolve(&a.control.pin, "pin");
            let mut blocks = resolve(&a.control.block, "block");
            if !pins.is_empty() {
                out.pins.insert(i, pins);
            }
            if !blocks.is_empty() {
                blocks.sort_unstable();
                out.blocks.insert(i, blocks);
            }
        }
        out
    }

    /// Whether `c` may enter the list of article `of` (`None`: free text) published at `date`,
    /// a candidate published at `c_date`. Pins are not asked: they always enter.
    pub fn allows(
        &self,
        of: Option<usize>,
        date: Option<DateTime<Utc>>,
        c: usize,
        c_date: Option<DateTime<Utc>>,
    ) -> bool {
        if self.ruled_out.get(c).copied().unwrap_or(false) {
            return false;
        }
        if let (Some(max), Some(d), Some(cd)) = (self.max_age, date, c_date) {
            if d - cd > max {
                return false;
            }
        }
        match of.and_then(|i| self.blocks.get(&i)) {
            Some(blocked) => blocked.binary_search(&c).is_err(),
            None => true,
        }
    }

    /// The pinned articles of article `i`, in order.
    pub fn pins_of(&self, i: usize) -> &[usize] {
        self.pins.get(&i).map_or(&[], Vec::as_slice)
    }

    pub fn is_locked(&self, i: usize) -> bool {
        self.locked.get(i).copied().unwrap_or(false)
    }

    /// Whether article `i`'s list names other articles (pins, blocks): such a list is ranked
    /// again on every refresh, since an article that appears or goes can change it whatever
    /// its score.
    pub fn names_targets(&self, i: usize) -> bool {
        self.pins.contains_key(&i) || self.blocks.contains_key(&i)
    }
}

/// How a pin or block target finds its article.
pub struct Names {
    by_name: HashMap<String, usize>,
}

impl Names {
    /// Every article of the corpus by normalised `webUrl` and `originalUrl`, and by path
    /// relative to `root`; the first article wins where two share a name.
    pub fn of(root: &Path, articles: &[Article]) -> Names {
        let mut by_name = HashMap::with_capacity(articles.len() * 2);
        for (i, a) in articles.iter().enumerate() {
            for url in [&a.web_url, &a.original_url].into_iter().flatten() {
                let u = normalize_url(url);
                if !u.is_empty() {
                    by_name.entry(u).or_insert(i);
                }
            }
            if let Some(rel) = relative_path(root, a) {
                by_name.entry(path_key(&rel)).or_insert(i);
            }
        }
        Names { by_name }
    }

    /// The article a target names.
    pub fn find(&self, target: &str) -> Option<usize> {
        self.by_name
            .get(&path_key(target))
            .or_else(|| self.by_name.get(&normalize_url(target)))
            .copied()
    }
}

/// A path as compared: `/` separators, no leading `./`.
fn path_key(p: &str) -> String {
    let p = p.replace('\\', "/");
    let mut p = p.as_str();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    format!("path:{p}")
}

/// The path of a front-matter article relative to the corpus folder.
pub fn relative_path(root: &Path, a: &Article) -> Option<String> {
    match &a.source {
        Source::File(p) => {
            let rel = p.strip_prefix(root).unwrap_or(p);
            Some(rel.to_string_lossy().replace('\\', "/"))
        }
        Source::JsonLine { .. } => None,
    }
}

/// The name a pin or block stores for `a`: its `webUrl`, else its path relative to `root`.
pub fn target_name(root: &Path, a: &Article) -> Option<String> {
    a.web_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| relative_path(root, a))
}

/// What `relink pin|unpin|block|unblock|lock|unlock` (and the server's endpoints) do to one
/// article's `relink:` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlEdit {
    Pin,
    Unpin,
    Block,
    Unblock,
    Lock,
    Unlock,
}

impl ControlEdit {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            ControlEdit::Pin => "pin",
            ControlEdit::Unpin => "unpin",
            ControlEdit::Block => "block",
            ControlEdit::Unblock => "unblock",
            ControlEdit::Lock => "lock",
            ControlEdit::Unlock => "unlock",
        }
    }

    /// What it did, as a past participle.
    pub fn done(self) -> &'static str {
        match self {
            ControlEdit::Pin => "pinned",
            ControlEdit::Unpin => "unpinned",
            ControlEdit::Block => "blocked",
            ControlEdit::Unblock => "unblocked",
            ControlEdit::Lock => "locked",
            ControlEdit::Unlock => "unlocked",
        }
    }
}

/// Applies `edit` with `targets` to the `relink:` map of article `i` of a corpus read from
/// `root`. Returns the new map and the names it added or removed. A target is a `webUrl`,
/// `originalUrl` or path relative to `root` (or a path that leads into `root`); one that names
/// no article or the article itself is refused, as is removing one that is not there. The
/// stored name is the target's `webUrl`, else its path in the corpus. Pinning a blocked article
/// unblocks it, and the other way round.
pub fn edit_control(
    root: &Path,
    articles: &[Article],
    i: usize,
    edit: ControlEdit,
    targets: &[String],
) -> Result<(crate::article::Control, Vec<String>), String> {
    let names = Names::of(root, articles);
    let root_canon = root.canonicalize().ok();
    let find = |t: &str| {
        names.find(t).or_else(|| {
            let c = Path::new(t).canonicalize().ok()?;
            let rel = c.strip_prefix(root_canon.as_ref()?).ok()?;
            names.find(&rel.to_string_lossy())
        })
    };
    let mut control = articles[i].control.clone();
    let mut done = Vec::new();
    for t in targets {
        let target = find(t);
        match edit {
            ControlEdit::Pin | ControlEdit::Block => {
                let j = target.ok_or_else(|| {
                    format!("{t}: no article of {} has this URL or path", root.display())
                })?;
                if j == i {
                    return Err(format!("{t}: is the article itself"));
                }
                let name = target_name(root, &articles[j])
                    .ok_or_else(|| format!("{t}: has neither a webUrl nor a path"))?;
                let (list, other) = if edit == ControlEdit::Pin {
                    (&mut control.pin, &mut control.block)
                } else {
                    (&mut control.block, &mut control.pin)
                };
                other.retain(|n| find(n) != Some(j));
                if !list.iter().any(|n| find(n) == Some(j)) {
                    list.push(name.clone());
                }
                done.push(name);
            }
            ControlEdit::Unpin | ControlEdit::Unblock => {
                let list = if edit == ControlEdit::Unpin {
                    &mut control.pin
                } else {
                    &mut control.block
                };
                let before = list.len();
                list.retain(|n| n != t && (target.is_none() || find(n) != target));
                if list.len() == before {
                    return Err(format!(
                        "{t}: not {} in {}",
                        if edit == ControlEdit::Unpin {
                            "pinned"
                        } else {
                            "blocked"
                        },
                        articles[i].display_path()
                    ));
                }
                done.push(t.clone());
            }
            ControlEdit::Lock => control.lock = true,
            ControlEdit::Unlock => control.lock = false,
        }
    }
    match edit {
        ControlEdit::Lock => control.lock = true,
        ControlEdit::Unlock => control.lock = false,
        _ => {}
    }
    Ok((control, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::{Control, Provider};

    fn article(root: &Path, name: &str, url: Option<&str>, domain: Option<&str>) -> Article {
        let text = format!("---\ntitle: {name}\n---\n");
        let mut a =
            crate::article::parse_article(&text, Source::File(root.join(name))).expect("parses");
        a.web_url = url.map(str::to_string);
        a.provider = domain.map(|d| Provider {
            name: None,
            domain: Some(d.to_string()),
        });
        a
    }

    #[test]
    fn targets_resolve_by_url_or_path_and_the_missing_are_reported() {
        let root = Path::new("/corpus");
        let mut a = article(root, "a.md", Some("https://x.com/a"), None);
        let b = article(root, "sub/b.md", None, None);
        let c = article(root, "c.md", Some("https://x.com/c"), None);
        a.control = Control {
            pin: vec!["./sub/b.md".into(), "http://www.x.com/c/".into()],
            block: vec!["gone.md".into(), "https://x.com/a".into()],
            lock: false,
        };
        a.control_line = Some(7);
        let e = Editorial::resolve(root, &[a, b, c], &Rules::default());
        assert_eq!(e.pins_of(0), &[1, 2]);
        assert!(!e.blocks.contains_key(&0));
        assert_eq!(e.problems.len(), 2);
        assert_eq!(
            e.problems[0].to_string(),
            "/corpus/a.md:7: relink.block gone.md: no article of the corpus has this URL or path; ignored"
        );
        assert!(e.problems[1].message.contains("itself"));
        assert!(e.names_targets(0) && !e.names_targets(1));
    }

    #[test]
    fn rules_block_domains_urls_and_old_articles() {
        let root = Path::new("/c");
        let rules = Rules {
            block_domains: vec!["Spam.example".into()],
            block_urls: vec!["https://news.test/bad?x=1".into()],
            max_age_days: Some(30.0),
        };
        let arts = [
            article(root, "a.md", Some("https://news.test/ok"), None),
            article(root, "b.md", Some("http://www.news.test/bad/"), None),
            article(root, "c.md", None, Some("cdn.spam.example")),
            article(root, "d.md", Some("https://notspam.example/x"), None),
        ];
        let e = Editorial::resolve(root, &arts, &rules);
        assert_eq!(e.ruled_out, vec![false, true, true, false]);
        let day = |d: u32| {
            Some(
                "2024-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(d as i64),
            )
        };
        assert!(e.allows(Some(0), day(40), 3, day(10)));
        assert!(!e.allows(Some(0), day(41), 3, day(10)));
        assert!(
            e.allows(Some(0), day(0), 3, day(100)),
            "newer is never too old"
        );
        assert!(e.allows(None, None, 3, day(0)));
        assert!(!e.allows(None, None, 1, None));
    }
}
