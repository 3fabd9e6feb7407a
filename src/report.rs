//! The HTML report of `relink eval --report`: one self-contained page (inline CSS and SVG, no
//! script, no network) with the metrics table, recall against k for each ranker, and example
//! articles with their reference list beside relink's list.

use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::eval::{columns, RankerResult, Reference};

/// What the report shows.
pub struct ReportInput<'a> {
    pub corpus: &'a str,
    pub model: &'a str,
    pub engine: &'a Engine,
    pub references: &'a [Option<Reference>],
    pub rows: &'a [RankerResult],
    /// relink's list for every article (corpus positions).
    pub lists: &'a [Vec<usize>],
    pub ks: &'a [usize],
    pub scored: usize,
}

/// Why a report is not written where it was asked to go.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Something other than a regular file is at the path.
    #[error("{}: {what}; a report is written only as a new file or over a regular file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    /// The path is in the state folder, whose files relink holds open (its lock among them).
    #[error("{}: inside relink's state folder {}; write the report elsewhere", path.display(), state.display())]
    InStateFolder { path: PathBuf, state: PathBuf },
    /// The path is a file the corpus is read from.
    #[error("{}: a file of the corpus being evaluated; write the report elsewhere", path.display())]
    CorpusFile { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks that a report may be written at `path`: nothing or a regular file is there (never a
/// device, FIFO, socket, folder or symbolic link, which a rename would replace), and it is
/// neither in a state folder (`state_dirs`: the one in use, and the corpus's own `.relink`)
/// nor one of the files the corpus is read from. Called before
/// the evaluation, so a wrong path costs nothing, and again just before writing.
pub fn check_destination(
    path: &Path,
    state_dirs: &[&Path],
    corpus_files: &mut dyn Iterator<Item = &Path>,
) -> Result<(), DestinationError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if !kind.is_file() {
                use std::os::unix::fs::FileTypeExt;
                let what = if kind.is_symlink() {
                    "a symbolic link"
                } else if kind.is_dir() {
                    "a folder"
                } else if kind.is_block_device() || kind.is_char_device() {
                    "a device"
                } else if kind.is_fifo() {
                    "a FIFO"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "not a regular file"
                };
                return Err(DestinationError::NotRegular {
                    path: path.to_path_buf(),
                    what,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DestinationError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    // Where the file would really be: its folder resolved, its own name kept.
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(folder) = folder.canonicalize() else {
        // A missing folder: the write fails with the system's own words.
        return Ok(());
    };
    let target = folder.join(path.file_name().unwrap_or_default());
    for state in state_dirs.iter().filter_map(|d| d.canonicalize().ok()) {
        if target.starts_with(&state) {
            return Err(DestinationError::InStateFolder {
                path: path.to_path_buf(),
                state,
            });
        }
    }
    let is_target = |p: &Path| p.canonicalize().is_ok_and(|p| p == target);
    if corpus_files
        .filter(|p| p.file_name() == target.file_name())
        .any(is_target)
    {
        return Err(DestinationError::CorpusFile {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: &[&str] = &["#1b6ac9", "#d9480f", "#2b8a3e", "#862e9c", "#5c677d"];

/// Renders the report.
pub fn html(r: &ReportInput) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>relink eval: {}</title>\
<style>body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
td:first-child,th:first-child{{text-align:left}}.lists td{{text-align:left;vertical-align:top;width:50%}}\
.hit{{background:#d3f9d8}}.miss{{color:#777}}h2{{margin-top:2em}}small{{color:#666}}</style></head><body>",
        esc(r.corpus)
    );
    let _ = write!(
        h,
        "<h1>relink eval</h1><p>Corpus <code>{}</code>: {} articles, {} scored against their existing related lists. Model <code>{}</code>, relink {}.</p>",
        esc(r.corpus),
        r.engine.corpus.articles.len(),
        r.scored,
        esc(r.model),
        env!("CARGO_PKG_VERSION")
    );

    h.push_str("<h2>Metrics</h2><table><tr><th>ranker</th>");
    let cols = columns(r.ks);
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for row in r.rows {
        let _ = write!(h, "<tr><td>{}</td>", esc(&row.name));
        for c in &cols {
            let _ = write!(
                h,
                "<td>{:.4}</td>",
                row.metrics.get(c).copied().unwrap_or(f64::NAN)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    h.push_str("<h2>Recall at k</h2>");
    h.push_str(&recall_chart(r.rows));

    h.push_str("<h2>Examples</h2><p><small>Reference list (the file's own) beside relink's list; matches are green.</small></p>");
    for i in examples(r.references, r.lists, 6) {
        let a = &r.engine.corpus.articles[i];
        let reference = r.references[i]
            .as_ref()
            .expect("examples are scored articles");
        let list: HashSet<usize> = r.lists[i].iter().copied().collect();
        let _ = write!(h, "<h3>{}</h3><p><small>{}</small></p><table class=\"lists\"><tr><th>reference</th><th>relink</th></tr><tr><td><ol>", esc(&a.title), esc(&a.display_path()));
        for set in reference {
            let hit = set.iter().any(|j| list.contains(j));
            let j = *set.iter().min().expect("reference sets are never empty");
            let _ = write!(
                h,
                "<li class=\"{}\">{}</li>",
                if hit { "hit" } else { "miss" },
                esc(&r.engine.corpus.articles[j].title)
            );
        }
        h.push_str("</ol></td><td><ol>");
        for &j in &r.lists[i] {
            let hit = reference.iter().any(|s| s.contains(&j));
            let _ = write!(
                h,
                "<li class=\"{}\">{}</li>",
                if hit { "hit" } else { "miss" },
                esc(&r.engine.corpus.articles[j].title)
            );
        }
        h.push_str("</ol></td></tr></table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// A few scored articles spread over the corpus (deterministic: every n-th one).
fn examples(references: &[Option<Reference>], lists: &[Vec<usize>], n: usize) -> Vec<usize> {
    let scored: Vec<usize> = references
        .iter()
        .enumerate()
        .filter(|(i, r)| r.is_some() && !lists[*i].is_empty())
        .map(|(i, _)| i)
        .collect();
    let step = (scored.len() / n.max(1)).max(1);
    scored.into_iter().step_by(step).take(n).collect()
}

/// An SVG line chart of recall@k (k = 1..) for each ranker.
fn recall_chart(rows: &[RankerResult]) -> String {
    let (w, h, pad) = (640.0, 320.0, 40.0);
    let max_k = rows.iter().map(|r| r.recall_curve.len()).max().unwrap_or(0);
    if max_k == 0 {
        return String::new();
    }
    let x = |k: usize| pad + (k as f64 - 1.0) / ((max_k as f64 - 1.0).max(1.0)) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v * (h - 2.0 * pad);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"recall at k\">");
    let _ = write!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>"
    );
    for t in 0..=5 {
        let v = t as f64 / 5.0;
        let _ = write!(
            s,
            "<line x1=\"{pad}\" x2=\"{x2}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#eee\"/><text x=\"4\" y=\"{ty}\" font-size=\"11\">{v:.1}</text>",
            x2 = w - pad,
            yy = y(v),
            ty = y(v) + 4.0
        );
    }
    for k in 1..=max_k {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{k}</text>",
            x(k),
            h - pad + 16.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">k</text>",
        w / 2.0,
        h - 6.0
    );
    for (n, row) in rows.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let points: Vec<String> = row
            .recall_curve
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i + 1), y(*v)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{color}\">{}</text>",
            pad + 10.0,
            pad + 14.0 * n as f64,
            esc(&row.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn chart_has_one_line_per_ranker() {
        let row = |name: &str| RankerResult {
            name: name.into(),
            metrics: Default::default(),
            ci: Default::default(),
            vs_first: None,
            recall_curve: vec![0.1, 0.2, 0.3],
            per_article: Default::default(),
            options: None,
        };
        let svg = recall_chart(&[row("relink"), row("cosine")]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">cosine</text>"));
    }
}
