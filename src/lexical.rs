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

/// The name of the text analysis below, part of what a kept BM25 statistic and a refresh's
/// lists depend on: statistics taken by another analysis are never mixed with this one's.
pub const ANALYZER: &str = "words-stopwords-plurals-1";

/// Lower-cased alphanumeric words of `text`, stopwords and one-letter words removed, plurals
/// folded ([`fold_plural`]).
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().count() > 1 && STOPWORDS.binary_search(&w.as_str()).is_err())
        .map(fold_plural)
}

/// An English plural as its singular, by Harman's "S" stemmer (1991): `-ies` -> `-y` (not
/// `-eies`, `-aies`), else `-s` -> `` (not `-us`, `-ss`; Harman's `-es` -> `-e` is the same
/// cut); words of three letters or less are kept. So "Seasons" and "season", "abilities" and
/// "ability", "shoes" and "shoe" match, while "us", "bus" or "class" stay whole. A light,
/// predictable rule: it folds some words that are not plurals ("news" -> "new") and misses
/// some that are ("patches" -> "patche"), but the same word always folds the same way, so two
/// titles still match on it.
pub fn fold_plural(mut w: String) -> String {
    let n = w.len();
    if n <= 3 || !w.ends_with('s') {
        return w;
    }
    if n > 4 && w.ends_with("ies") && !w.ends_with("eies") && !w.ends_with("aies") {
        w.truncate(n - 3);
        w.push('y');
    } else if !(w.ends_with("us") || w.ends_with("ss")) {
        w.truncate(n - 1);
    }
    w
}

/// Okapi BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// What BM25 weighs terms by: the number of documents, their average length in words, and
/// the number of documents each term is in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LexicalStats {
    pub docs: u64,
    pub avg_len: f32,
    pub df: HashMap<String, u32>,
}

/// A text as a BM25 document: its known terms with their counts (sorted) and its length
/// normalisation.
#[derive(Clone, Debug)]
pub struct TextDoc {
    pub terms: Vec<(u32, u16)>,
    pub norm: f32,
}

/// An inverted index over a corpus of short texts, scored with BM25.
pub struct Bm25 {
    /// term id -> (document, the term's score in it): the score is kept rather than the term
    /// frequency so that a search reads it in order with the documents, instead of looking up
    /// each document's length normalisation at random (at a million titles, that lookup was
    /// most of a search's time)
    postings: Vec<Vec<(u32, f32)>>,
    idf: Vec<f32>,
    /// document -> its distinct term ids with their frequency
    docs: Vec<Vec<(u32, u16)>>,
    /// BM25 length normalisation per document: K1 * (1 - B + B * len / avg_len)
    norm: Vec<f32>,
    /// term id -> the most any one document scores for it (MaxScore's upper bound)
    max_score: Vec<f32>,
    avg_len: f32,
    terms: HashMap<String, u32>,
}

impl Bm25 {
    /// Indexes `texts`; document `i` is `texts[i]`.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Bm25 {
        Bm25::with_stats(texts, None)
    }

    /// Indexes `texts`, weighing terms by `stats` (document count, frequencies, average length)
    /// when given instead of by `texts` themselves: the scores then stay the same while
    /// documents come and go, which is what lets a refresh re-rank only the lists a change can
    /// reach (see [`crate::selective`]). A term `stats` never saw counts as in no document.
    pub fn with_stats<S: AsRef<str>>(texts: &[S], stats: Option<&LexicalStats>) -> Bm25 {
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
        let mut df = vec![0u32; terms.len()];
        for doc in &docs {
            for &(t, _) in doc {
                df[t as usize] += 1;
            }
        }
        let (n, avg) = match stats {
            Some(s) => (s.docs as f32, s.avg_len),
            None => (
                texts.len() as f32,
                lengths.iter().sum::<usize>() as f32 / (texts.len() as f32).max(1.0),
            ),
        };
        let mut idf = vec![0.0f32; terms.len()];
        for (word, &t) in &terms {
            let df = match stats {
                Some(s) => s.df.get(word).copied().unwrap_or(0) as f32,
                None => df[t as usize] as f32,
            };
            idf[t as usize] = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
        }
        let avg_len = avg.max(1.0);
        let norm: Vec<f32> = lengths
            .iter()
            .map(|&l| K1 * (1.0 - B + B * l as f32 / avg_len))
            .collect();
        let mut postings: Vec<Vec<(u32, f32)>> =
            df.iter().map(|&n| Vec::with_capacity(n as usize)).collect();
        for (d, doc) in docs.iter().enumerate() {
            for &(t, tf) in doc {
                let score = term_score(idf[t as usize], tf as f32, norm[d]);
                postings[t as usize].push((d as u32, score));
            }
        }
        let max_score = postings
            .iter()
            .map(|p| p.iter().map(|&(_, s)| s).fold(0.0f32, f32::max))
            .collect();
        Bm25 {
            postings,
            idf,
            docs,
            norm,
            max_score,
            avg_len,
            terms,
        }
    }

    /// The statistics this index weighs terms by, to be kept and given back to
    /// [`Bm25::with_stats`].
    pub fn stats(&self) -> LexicalStats {
        LexicalStats {
            docs: self.docs.len() as u64,
            avg_len: self.avg_len,
            df: self
                .terms
                .iter()
                .map(|(w, &t)| (w.clone(), self.postings[t as usize].len() as u32))
                .collect(),
        }
    }

    /// Free text as a document of this index (its known terms, and the length normalisation of
    /// all its words), for [`Bm25::score_against`].
    pub fn doc_of_text(&self, text: &str) -> TextDoc {
        let mut counts: HashMap<u32, u16> = HashMap::new();
        let mut len = 0usize;
        for w in tokenize(text) {
            len += 1;
            if let Some(&t) = self.terms.get(&w) {
                *counts.entry(t).or_default() += 1;
            }
        }
        let mut terms: Vec<(u32, u16)> = counts.into_iter().collect();
        terms.sort_unstable();
        TextDoc {
            terms,
            norm: K1 * (1.0 - B + B * len as f32 / self.avg_len),
        }
    }

    /// Document `doc` as a [`TextDoc`].
    pub fn doc(&self, doc: usize) -> TextDoc {
        TextDoc {
            terms: self.docs[doc].clone(),
            norm: self.norm[doc],
        }
    }

    /// The score of `doc` for the query `terms` (sorted term ids): bit for bit what
    /// [`Bm25::score`] gives a document of the index with the same terms and length.
    pub fn score_against(&self, terms: &[u32], doc: &TextDoc) -> f32 {
        self.score_terms_in(terms, &doc.terms, doc.norm)
    }

    /// [`score_against`](Self::score_against) with the terms of document `query` as the query,
    /// without gathering them first: the same bits.
    pub fn doc_score_against(&self, query: usize, doc: &TextDoc) -> f32 {
        self.score_keys_in(&self.docs[query], |&(t, _)| t, &doc.terms, doc.norm)
    }

    /// The terms of `doc` a document must hold to give it a score of `floor` or more, as a
    /// query of its own terms: all but the lightest, whose weights in `doc` add up to less.
    pub fn essential_terms(&self, doc: &TextDoc, floor: f32) -> Vec<u32> {
        let mut weights: Vec<(f32, u32)> = doc
            .terms
            .iter()
            .map(|&(t, tf)| (term_score(self.idf[t as usize], tf as f32, doc.norm), t))
            .collect();
        weights.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut sum = 0.0f64;
        let mut out = Vec::new();
        for (w, t) in weights {
            sum += w as f64;
            // With a margin for the rounding of f32 sums taken in another order.
            if sum * (1.0 + 1e-5) + 1e-6 >= floor as f64 {
                out.push(t);
            }
        }
        out.sort_unstable();
        out
    }

    /// The documents holding any of `terms`, each once, in increasing order. Each posting list
    /// is in document order: one list is the answer as it is; several are marked in a bitmap
    /// of the documents, read back in order, instead of their union sorted (with this and
    /// [`doc_score_against`](Self::doc_score_against), the lexical side of a 100,000-article
    /// delta's plan took 1.3 to 1.6 s instead of 1.7 to 2.8 s).
    pub fn docs_holding(&self, terms: &[u32]) -> Vec<usize> {
        let docs = |t: u32| self.postings[t as usize].iter().map(|&(d, _)| d as usize);
        match terms {
            [] => Vec::new(),
            [t] => docs(*t).collect(),
            _ => {
                let mut marks = vec![0u64; self.len().div_ceil(64)];
                for &t in terms {
                    for d in docs(t) {
                        marks[d / 64] |= 1 << (d % 64);
                    }
                }
                let mut out = Vec::new();
                for (w, &word) in marks.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        out.push(w * 64 + word.trailing_zeros() as usize);
                        word &= word - 1;
                    }
                }
                out
            }
        }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The terms of document `doc`, as a query (sorted term ids).
    pub fn doc_terms(&self, doc: usize) -> Vec<u32> {
        self.docs[doc].iter().map(|&(t, _)| t).collect()
    }

    /// The terms of free text known to the corpus, as a query (sorted term ids, each once).
    pub fn text_terms(&self, text: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = tokenize(text)
            .filter_map(|w| self.terms.get(&w).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The score of document `doc` for the query `terms` (sorted term ids). Contributions are
    /// added in term order, as every other scoring path here does, so the same pair always
    /// gets the same bits.
    pub fn score(&self, terms: &[u32], doc: usize) -> f32 {
        self.score_terms_in(terms, &self.docs[doc], self.norm[doc])
    }

    fn score_terms_in(&self, terms: &[u32], d: &[(u32, u16)], norm: f32) -> f32 {
        self.score_keys_in(terms, |&t| t, d, norm)
    }

    /// The score of a document of terms `d` and length normalisation `norm` for a query of
    /// sorted items whose term ids `key` gives, added in term order.
    fn score_keys_in<Q>(
        &self,
        query: &[Q],
        key: impl Fn(&Q) -> u32,
        d: &[(u32, u16)],
        norm: f32,
    ) -> f32 {
        let mut total = 0.0f32;
        let (mut i, mut j) = (0, 0);
        while i < query.len() && j < d.len() {
            let t = key(&query[i]);
            match t.cmp(&d[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    total += term_score(self.idf[t as usize], d[j].1 as f32, norm);
                    i += 1;
                    j += 1;
                }
            }
        }
        total
    }

    /// The `k` best documents for the query `terms` (sorted term ids): (document, score), by
    /// score then by document, the same as ranking every matching document, without scoring
    /// them all (MaxScore: once `k` documents are held, a term whose best possible score, added
    /// to the lesser terms', cannot beat the k-th no longer brings in documents of its own).
    /// Returned sorted by document.
    pub fn top_k(&self, terms: &[u32], k: usize) -> Vec<(usize, f32)> {
        self.top_k_where(terms, k, |_| true)
    }

    /// [`Bm25::top_k`] among the documents `keep` accepts: the others are never scored, so
    /// they cannot take a place of the `k`.
    ///
    /// The documents are visited in blocks of [`BLOCK`] consecutive ids. In a block, the
    /// posting lists that can still bring a document in are added into a small accumulator,
    /// and the lesser lists into the documents already found there, so that each found
    /// document has a partial sum that is a lower bound of its score (a list much longer than
    /// the others is left out, and its best score stands in for it). The `k` largest partial
    /// sums give a floor that the k-th best score cannot be below; a document whose sum plus
    /// what the left-out lists could add falls below it is dropped, and once the lesser lists'
    /// best scores add up to less than the floor they bring in no document of their own
    /// (MaxScore). Only the documents still in reach at the end are scored in full. Scoring
    /// reads each document's terms at random, which at a million titles cost more than the
    /// rest of the search: this way about `k` documents are scored instead of thousands.
    pub fn top_k_where(
        &self,
        terms: &[u32],
        k: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        if k == 0 || terms.is_empty() {
            return Vec::new();
        }
        // Lesser terms first: the ones that stop counting first.
        let mut by_bound: Vec<u32> = terms.to_vec();
        by_bound.sort_by(|a, b| {
            self.max_score[*a as usize]
                .total_cmp(&self.max_score[*b as usize])
                .then(a.cmp(b))
        });
        // Rounded up and down for f32 sums taken in another order than `score`'s.
        let up = |x: f64| x * (1.0 + 1e-5) + 1e-6;
        let down = |x: f32| x as f64 * (1.0 - 1e-5) - 1e-6;
        // bound[i]: the most a document found in none of the terms after i can score.
        let mut bound = Vec::with_capacity(by_bound.len());
        let mut sum = 0.0f64;
        for t in &by_bound {
            sum += self.max_score[*t as usize] as f64;
            bound.push(up(sum));
        }
        let lists: Vec<&[(u32, f32)]> = by_bound
            .iter()
            .map(|t| self.postings[*t as usize].as_slice())
            .collect();
        let mut cursor = vec![0usize; lists.len()];
        // The k largest partial sums so far, the least on top.
        let mut partials: BinaryHeap<Reverse<ByScore>> = BinaryHeap::with_capacity(k + 1);
        let mut least_partial = f32::NEG_INFINITY;
        let mut floor = f64::NEG_INFINITY;
        // Documents in reach: (document, the most it can score).
        let mut candidates: Vec<(u32, f64)> = Vec::new();
        let mut essential = 0usize;
        let mut acc = vec![0.0f32; BLOCK];
        let mut found = vec![0u64; BLOCK / 64];
        // Each block starts at the first document an essential list has not passed yet.
        while let Some(start) = (essential..lists.len())
            .filter_map(|i| lists[i].get(cursor[i]).map(|&(d, _)| d))
            .min()
        {
            let end = start.saturating_add(BLOCK as u32);
            let mut walked = 0usize;
            for i in essential..lists.len() {
                let list = lists[i];
                let mut c = cursor[i];
                while let Some(&(d, s)) = list.get(c).filter(|p| p.0 < end) {
                    let j = (d - start) as usize;
                    acc[j] += s;
                    found[j / 64] |= 1 << (j % 64);
                    c += 1;
                }
                cursor[i] = c;
                walked += list.len();
            }
            let mut left_out = 0.0f64;
            for i in 0..essential {
                let list = lists[i];
                if list.len() > 4 * walked {
                    left_out += self.max_score[by_bound[i] as usize] as f64;
                    continue;
                }
                let mut c = cursor[i] + gallop(&list[cursor[i]..], start);
                while let Some(&(d, s)) = list.get(c).filter(|p| p.0 < end) {
                    let j = (d - start) as usize;
                    if found[j / 64] & (1 << (j % 64)) != 0 {
                        acc[j] += s;
                    }
                    c += 1;
                }
                cursor[i] = c;
            }
            let left_out = if left_out > 0.0 { up(left_out) } else { 0.0 };
            let words = ((end - start) as usize).div_ceil(64);
            for (w, bits) in found[..words].iter_mut().enumerate() {
                let mut word = std::mem::take(bits);
                while word != 0 {
                    let j = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    let partial = std::mem::take(&mut acc[j]);
                    let most = up(partial as f64) + left_out;
                    if partial <= least_partial && most < floor {
                        continue;
                    }
                    let doc = start as usize + j;
                    if !keep(doc) {
                        continue;
                    }
                    if partial > least_partial {
                        partials.push(Reverse(ByScore(partial)));
                        if partials.len() > k {
                            partials.pop();
                        }
                        if partials.len() == k {
                            least_partial = partials.peek().map_or(least_partial, |p| p.0 .0);
                            floor = down(least_partial);
                        }
                    }
                    if most >= floor {
                        candidates.push((doc as u32, most));
                    }
                }
            }
            while essential < lists.len() && bound[essential] < floor {
                essential += 1;
            }
            if candidates.len() > 4 * k + 1024 {
                candidates.retain(|&(_, most)| most >= floor);
            }
        }
        let mut best: Vec<(f32, usize)> = candidates
            .into_iter()
            .filter(|&(_, most)| most >= floor)
            .map(|(d, _)| (self.score(terms, d as usize), d as usize))
            .collect();
        let better = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if best.len() > k {
            best.select_nth_unstable_by(k - 1, better);
            best.truncate(k);
        }
        let mut out: Vec<(usize, f32)> = best.into_iter().map(|(s, d)| (d, s)).collect();
        out.sort_unstable_by_key(|&(d, _)| d);
        out
    }

    /// Scores every document that shares a term with document `doc`, using its terms as the
    /// query. Returns (document, score) pairs, unsorted, `doc` itself included.
    pub fn scores_for_doc(&self, doc: usize) -> Vec<(usize, f32)> {
        self.score_terms(self.docs[doc].iter().map(|&(t, _)| t))
    }

    /// Scores every document against free text.
    pub fn scores_for_text(&self, text: &str) -> Vec<(usize, f32)> {
        self.score_terms(self.text_terms(text).into_iter())
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
                for &(d, score) in &self.postings[t as usize] {
                    let slot = &mut acc[d as usize];
                    if *slot == 0.0 {
                        touched.push(d);
                    }
                    *slot += score;
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

/// Documents a search of [`Bm25::top_k_where`] adds up at a time: 16 KB of partial sums, held
/// in the first-level cache.
const BLOCK: usize = 4096;

/// A score ordered by `total_cmp`, for a heap.
#[derive(Clone, Copy, PartialEq)]
struct ByScore(f32);

impl Eq for ByScore {}

impl PartialOrd for ByScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// How many postings of `list` (sorted by document) lie before `doc`: galloping, since a
/// search moves a cursor forward by a little most of the time.
fn gallop(list: &[(u32, f32)], doc: u32) -> usize {
    let mut hi = 1;
    while hi < list.len() && list[hi - 1].0 < doc {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|p| p.0 < doc)
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

    /// Every match scored, then the k best by score and document: what top_k must equal.
    fn exhaustive(bm: &Bm25, terms: &[u32], k: usize) -> Vec<(usize, f32)> {
        exhaustive_where(bm, terms, k, |_| true)
    }

    /// The `k` best of every match `keep` accepts, scored one by one (ties to the lower id),
    /// in document order: what [`Bm25::top_k_where`] must return.
    fn exhaustive_where(
        bm: &Bm25,
        terms: &[u32],
        k: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let mut all = bm.score_terms(terms.iter().copied());
        all.retain(|&(d, _)| keep(d));
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all.sort_unstable_by_key(|&(d, _)| d);
        all
    }

    #[test]
    fn top_k_equals_scoring_every_match() {
        // Titles from a small vocabulary, with repeats and exact duplicates, so that scores tie.
        let words = [
            "diablo", "season", "patch", "lilith", "druid", "update", "boss", "nerf", "buff",
            "event", "blizzard", "loot", "ladder", "paragon", "uber", "build", "guide", "fix",
        ];
        let mut state = 7u64;
        let texts: Vec<String> = (0..3000)
            .map(|i| {
                if i % 17 == 0 {
                    return "diablo season patch".to_string();
                }
                let n = 1 + (crate::index::splitmix64(&mut state) % 6) as usize;
                (0..n)
                    .map(|_| words[(crate::index::splitmix64(&mut state) % 18) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let bm = Bm25::new(&texts);
        for doc in (0..texts.len()).step_by(7) {
            let terms = bm.doc_terms(doc);
            for k in [1, 5, 37, 200, 5000] {
                assert_eq!(
                    bm.top_k(&terms, k),
                    exhaustive(&bm, &terms, k),
                    "doc {doc} k {k}"
                );
            }
        }
        // Filtered: the same as scoring every kept match.
        for doc in (0..texts.len()).step_by(97) {
            let terms = bm.doc_terms(doc);
            let keep = |d: usize| !d.is_multiple_of(3);
            let want = exhaustive_where(&bm, &terms, 40, keep);
            assert_eq!(bm.top_k_where(&terms, 40, keep), want, "doc {doc}");
        }
        let terms = bm.text_terms("Diablo boss guide, and a word unknown here");
        assert_eq!(bm.top_k(&terms, 50), exhaustive(&bm, &terms, 50));
        assert!(bm.top_k(&[], 5).is_empty());
        for (d, s) in bm.top_k(&terms, 50) {
            assert_eq!(s, bm.score(&terms, d));
        }
    }

    #[test]
    fn top_k_over_many_blocks_equals_scoring_every_match() {
        // 3.5 blocks of titles: a word in every one (its posting list far longer than the
        // others', so a search leaves it out and counts its best score instead), common words,
        // rare ones, and runs of identical titles whose scores tie across block edges.
        let common = [
            "council", "vote", "budget", "river", "flood", "bridge", "school",
        ];
        let mut state = 3u64;
        let mut pick = |n: u64| (crate::index::splitmix64(&mut state) % n) as usize;
        let texts: Vec<String> = (0..BLOCK * 7 / 2)
            .map(|i| {
                if (BLOCK - 40..BLOCK + 40).contains(&(i % (2 * BLOCK))) {
                    return "story council vote".to_string();
                }
                let mut words = vec!["story".to_string()];
                for _ in 0..1 + pick(4) {
                    words.push(common[pick(common.len() as u64)].to_string());
                }
                words.push(format!("rare{}", pick(900)));
                words.join(" ")
            })
            .collect();
        let bm = Bm25::new(&texts);
        let mut queries: Vec<Vec<u32>> = (0..texts.len())
            .step_by(331)
            .map(|d| bm.doc_terms(d))
            .collect();
        queries.push(bm.text_terms("story council vote"));
        queries.push(bm.text_terms("story"));
        queries.push(bm.text_terms("story rare17 rare18"));
        for terms in &queries {
            for k in [1, 5, 232, 3000] {
                assert_eq!(
                    bm.top_k(terms, k),
                    exhaustive(&bm, terms, k),
                    "{terms:?} k {k}"
                );
            }
            let keep = |d: usize| d % 5 != 2;
            let want = exhaustive_where(&bm, terms, 232, keep);
            assert_eq!(bm.top_k_where(terms, 232, keep), want, "{terms:?}");
        }
    }

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
    fn plurals_fold_to_their_singular() {
        for (word, folded) in [
            ("seasons", "season"),
            ("abilities", "ability"),
            ("shoes", "shoe"),
            ("ties", "tie"),
            ("2020s", "2020"),
            ("season", "season"),
            ("class", "class"),
            ("bonus", "bonus"),
            ("gas", "gas"),
            ("zombies", "zomby"),
        ] {
            assert_eq!(fold_plural(word.to_string()), folded, "{word}");
        }
        let a: Vec<String> = tokenize("Diablo 4 Seasons: new abilities").collect();
        let b: Vec<String> = tokenize("diablo 4 season ability").collect();
        assert_eq!(a, b);
        let bm = Bm25::new(&["Diablo seasons", "Weather report"]);
        assert!(bm.score(&bm.doc_terms(0), 0) > 0.0);
        assert_eq!(
            bm.query_self_score("Diablo season"),
            bm.query_self_score("diablo SEASONS")
        );
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
