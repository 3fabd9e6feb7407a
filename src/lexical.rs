//! BM25 over article titles: the lexical signal fused with embedding similarity, and the
//! `lexical` baseline of `relink eval`.
//!
//! Names, numbers and rare words ("Season 4", "Lilith", "patch 1.0.3") tie together coverage of
//! one story more tightly than a 384-d sentence embedding does, so the ranker blends both.

use std::collections::HashMap;

/// Words so common in news text that they carry no topic.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "more", "most", "my",
    "new", "no", "not", "now", "of", "on", "one", "or", "our", "out", "over", "says", "she", "so",
    "some", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "up", "us", "was", "we", "were", "what", "when", "which", "who", "will", "with", "would",
    "you", "your",
];

/// Lower-cased alphanumeric words of `text`, stopwords and one-letter words removed.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().count() > 1 && STOPWORDS.binary_search(&w.as_str()).is_err())
}

/// Okapi BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An inverted index over a corpus of short texts, scored with BM25.
pub struct Bm25 {
    /// term id -> (document, term frequency)
    postings: Vec<Vec<(u32, u16)>>,
    idf: Vec<f32>,
    /// document -> its distinct term ids with their frequency
    docs: Vec<Vec<(u32, u16)>>,
    /// BM25 length normalisation per document: K1 * (1 - B + B * len / avg_len)
    norm: Vec<f32>,
    avg_len: f32,
    terms: HashMap<String, u32>,
}

impl Bm25 {
    /// Indexes `texts`; document `i` is `texts[i]`.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Bm25 {
        let mut terms: HashMap<String, u32> = HashMap::new();
        let mut docs = Vec::with_capacity(texts.len());
        let mut lengths = Vec::with_capacity(texts.len());
        for text in texts {
            let mut counts: HashMap<u32, u16> = HashMap::new();
            let mut len = 0usize;
            for word in tokenize(text.as_ref()) {
                let next = terms.len() as u32;
                let id = *terms.entry(word).or_insert(next);
                *counts.entry(id).or_default() += 1;
                len += 1;
            }
            let mut doc: Vec<(u32, u16)> = counts.into_iter().collect();
            doc.sort_unstable();
            docs.push(doc);
            lengths.push(len);
        }
        let mut postings = vec![Vec::new(); terms.len()];
        for (d, doc) in docs.iter().enumerate() {
            for &(t, tf) in doc {
                postings[t as usize].push((d as u32, tf));
            }
        }
        let n = texts.len() as f32;
        let idf = postings
            .iter()
            .map(|p| {
                let df = p.len() as f32;
                ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
            })
            .collect();
        let avg = lengths.iter().sum::<usize>() as f32 / n.max(1.0);
        let norm = lengths
            .iter()
            .map(|&l| K1 * (1.0 - B + B * l as f32 / avg.max(1.0)))
            .collect();
        Bm25 {
            postings,
            idf,
            docs,
            norm,
            avg_len: avg.max(1.0),
            terms,
        }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Scores every document that shares a term with document `doc`, using its terms as the
    /// query. Returns (document, score) pairs, unsorted, `doc` itself included.
    pub fn scores_for_doc(&self, doc: usize) -> Vec<(usize, f32)> {
        self.score_terms(self.docs[doc].iter().map(|&(t, _)| t))
    }

    /// Scores every document against free text.
    pub fn scores_for_text(&self, text: &str) -> Vec<(usize, f32)> {
        let mut ids: Vec<u32> = tokenize(text)
            .filter_map(|w| self.terms.get(&w).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        self.score_terms(ids.into_iter())
    }

    fn score_terms(&self, terms: impl Iterator<Item = u32>) -> Vec<(usize, f32)> {
        thread_local! {
            // One dense accumulator per thread, reset through the list of documents touched:
            // ranking scores every article, and hashing each posting cost more than BM25 itself.
            static ACC: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        ACC.with(|acc| {
            let mut acc = acc.borrow_mut();
            if acc.len() < self.docs.len() {
                acc.resize(self.docs.len(), 0.0);
            }
            let mut touched: Vec<u32> = Vec::new();
            for t in terms {
                let idf = self.idf[t as usize];
                for &(d, tf) in &self.postings[t as usize] {
                    let tf = tf as f32;
                    let slot = &mut acc[d as usize];
                    if *slot == 0.0 {
                        touched.push(d);
                    }
                    *slot += term_score(idf, tf, self.norm[d as usize]);
                }
            }
            touched.sort_unstable();
            touched.dedup();
            touched
                .into_iter()
                .map(|d| {
                    let score = std::mem::take(&mut acc[d as usize]);
                    (d as usize, score)
                })
                .collect()
        })
    }

    /// The score document `doc` gets against itself: the ceiling used to bring scores to 0..1.
    pub fn self_score(&self, doc: usize) -> f32 {
        self.docs[doc]
            .iter()
            .map(|&(t, tf)| {
                let tf = tf as f32;
                term_score(self.idf[t as usize], tf, self.norm[doc])
            })
            .sum()
    }
}

/// BM25's weight of one term in one document: `idf` of the term, `tf` its count there, `norm`
/// the document's length normalisation `k1 (1 - b + b len / avg_len)`.
fn term_score(idf: f32, tf: f32, norm: f32) -> f32 {
    idf * tf * (K1 + 1.0) / (tf + norm)
}

impl Bm25 {
    /// The score free text would get against itself were it a document of the corpus (words
    /// unknown to the corpus count for nothing).
    pub fn query_self_score(&self, text: &str) -> f32 {
        let mut counts: HashMap<u32, u16> = HashMap::new();
        let mut len = 0usize;
        for w in tokenize(text) {
            len += 1;
            if let Some(&t) = self.terms.get(&w) {
                *counts.entry(t).or_default() += 1;
            }
        }
        let norm = K1 * (1.0 - B + B * len as f32 / self.avg_len);
        counts
            .into_iter()
            .map(|(t, tf)| {
                let tf = tf as f32;
                term_score(self.idf[t as usize], tf, norm)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn tokenize_drops_stopwords_and_punctuation() {
        let words: Vec<String> = tokenize("The Season of Blood: patch 1.0.3, a \"fix\"!").collect();
        assert_eq!(words, ["season", "blood", "patch", "fix"]);
    }

    #[test]
    fn shared_rare_words_score_higher() {
        let bm = Bm25::new(&[
            "Lilith returns in Diablo season",
            "Lilith statue found in Diablo",
            "Diablo season patch notes",
            "Weather report for Paris",
        ]);
        let scores: HashMap<usize, f32> = bm.scores_for_doc(0).into_iter().collect();
        assert!(scores[&1] > 0.0 && scores[&2] > 0.0);
        assert!(!scores.contains_key(&3));
        assert!(scores[&0] >= scores[&1]);
        assert!((scores[&0] - bm.self_score(0)).abs() < 1e-5);
        let free: HashMap<usize, f32> = bm.scores_for_text("lilith").into_iter().collect();
        assert_eq!(free.len(), 2);
    }
}
