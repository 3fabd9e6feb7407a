//! Helpers for tests, benches and scale runs, not part of the engine: a bag-of-words embedder
//! that needs no model (behind `relink --test-embedder`), and seeded random unit vectors.

use ndarray::Array2;

use crate::embed::{normalize_rows, EmbedError, TextEmbedder};
use crate::index::splitmix64;

/// A bag-of-words embedder: every lower-cased word is hashed to a few signed coordinates.
/// Texts that share words get a high cosine, which is all the ranking tests need, and it embeds
/// thousands of texts per millisecond with no model on disk.
pub struct HashEmbedder {
    dim: usize,
    id: String,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> HashEmbedder {
        HashEmbedder {
            dim,
            id: format!("hash-bow/{dim}"),
        }
    }
}

impl TextEmbedder for HashEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Array2<f32>, EmbedError> {
        let mut out = Array2::<f32>::zeros((texts.len(), self.dim));
        for (i, text) in texts.iter().enumerate() {
            for word in crate::lexical::tokenize(text) {
                let h = xxhash_rust::xxh3::xxh3_64(word.as_bytes());
                for j in 0..3 {
                    let bits = h.rotate_left(j * 21);
                    let coord = (bits % self.dim as u64) as usize;
                    let sign = if bits & (1 << 63) == 0 { 1.0 } else { -1.0 };
                    out[[i, coord]] += sign;
                }
            }
        }
        normalize_rows(&mut out);
        Ok(out)
    }
}

/// `n` random unit vectors of dimension `dim` from a fixed seed (for benches and tests).
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    // splitmix64 then Box-Muller: Gaussian coordinates give directions uniform on the sphere.
    let mut state = seed;
    let mut next = move || (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
    let mut m = Array2::<f32>::zeros((n, dim));
    for x in m.iter_mut() {
        let (u1, u2) = (next().max(1e-300), next());
        *x = ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32;
    }
    normalize_rows(&mut m);
    m
}

/// Synthetic news archives in the seed format, for the scale bench and the incremental tests:
/// titles and excerpts made from a vocabulary, dates over ten years, 500 providers with
/// qualities, stories of 3 to 8 articles a few days apart, so that related lists have a right
/// answer. Files are `dir/0000/a00000000.md`, a thousand to a folder.
pub mod archive {
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::index::splitmix64;

    /// How a generated article differs from its first version.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Edit {
        None,
        /// "Update: " before the title.
        Title,
        /// A sentence added to the excerpt.
        Excerpt,
        /// Published 30 days later, with another quality.
        Date,
    }

    fn words() -> Vec<&'static str> {
        WORDS.split_whitespace().collect()
    }

    pub const WORDS: &str =
        "council vote budget river flood bridge school teacher strike hospital \
    nurse vaccine virus trial court judge verdict police arrest fire forest drought harvest farmer \
    price market shares merger bank rate inflation housing rent tenant mayor election campaign \
    senate bill reform tax energy solar wind grid outage storm hurricane coast port ship cargo \
    airline airport flight pilot union wage factory plant closure jobs startup funding app phone \
    chip software hack breach privacy data museum exhibit artist concert festival film award \
    novel author library stadium coach league final match goal record player transfer injury \
    marathon mountain rescue climber volcano earthquake quake tsunami satellite rocket launch \
    moon telescope galaxy climate summit treaty border migrant refugee embassy minister protest \
    rally parliament coalition scandal resign inquiry report audit railway train tram metro road \
    crash safety recall vehicle electric battery charging mine copper lithium oil gas pipeline \
    leak spill wildlife whale reef species zoo park garden bakery restaurant chef recipe wine \
    vineyard tourism hotel cruise island beach heatwave snow glacier avalanche";

    const VERBS: [&str; 12] = [
        "approves", "rejects", "delays", "faces", "plans", "reports", "warns of", "confirms",
        "launches", "ends", "expands", "reviews",
    ];

    pub struct Rng(pub u64);

    impl Rng {
        pub fn u64(&mut self) -> u64 {
            splitmix64(&mut self.0)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.u64() % n as u64) as usize
        }
    }

    /// One generated article: its story, and the text of its file.
    pub fn article_text(i: usize, story: usize, edit: Edit) -> String {
        let words = words();
        let mut r = Rng(story as u64 * 7919 + 17);
        let topic: Vec<&str> = (0..3).map(|_| words[r.below(words.len())]).collect();
        let place = words[r.below(words.len())];
        let story_day = r.below(3650) as i64;
        let mut a = Rng(i as u64 * 104_729 + 3);
        let verb = VERBS[a.below(VERBS.len())];
        let extra = words[a.below(words.len())];
        let day = story_day + a.below(6) as i64 + if edit == Edit::Date { 30 } else { 0 };
        let date = chrono::DateTime::from_timestamp(
            1_420_070_400 + day * 86_400 + a.below(86_400) as i64,
            0,
        )
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
        let provider = a.below(500);
        let quality = (provider * 37 % 100) as i64 + if edit == Edit::Date { 7 } else { 0 };
        let title = format!(
            "{}{} {} {} {} in {} story {story}",
            if edit == Edit::Title { "Update: " } else { "" },
            capitalise(topic[0]),
            verb,
            topic[1],
            topic[2],
            place
        );
        let mut excerpt = format!(
            "The {} {} {} affects {} and {} as {} {} continues; part {} of the {} coverage.",
            topic[0], topic[1], topic[2], place, extra, topic[1], verb, i, topic[0]
        );
        if edit == Edit::Excerpt {
            excerpt.push_str(" Corrected.");
        }
        format!(
            "---\ncategory: news\ntitle: \"{title}\"\nexcerpt: \"{excerpt}\"\npublishedDateTime: {date}\nwebUrl: \"https://news{provider}.example/{i}\"\ntype: article\nquality: {quality}\nprovider:\n  name: Provider {provider}\n  domain: news{provider}.example\n---\nBody of article {i}.\n"
        )
    }

    fn capitalise(w: &str) -> String {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    }

    /// Story of article `i`: stories of 3 to 8 consecutive articles.
    pub fn stories(n: usize) -> Vec<usize> {
        let mut r = Rng(42);
        let mut out = Vec::with_capacity(n);
        let mut story = 0;
        while out.len() < n {
            let len = 3 + r.below(6);
            for _ in 0..len.min(n - out.len()) {
                out.push(story);
            }
            story += 1;
        }
        out
    }

    pub fn file_of(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{:04}", i / 1000))
            .join(format!("a{i:08}.md"))
    }

    pub fn generate(dir: &Path, n: usize) {
        let _ = fs::remove_dir_all(dir);
        for (i, story) in stories(n).into_iter().enumerate() {
            let path = file_of(dir, i);
            if i % 1000 == 0 {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
            }
            fs::write(path, article_text(i, story, Edit::None)).unwrap();
        }
    }

    /// 1,000 new articles (new stories), 1,000 edited titles, 100 deleted files, in an archive of
    /// `n` made by [`generate`]; `round` numbers successive deltas.
    pub fn apply_delta(dir: &Path, n: usize, round: usize) {
        let story = stories(n);
        let last_story = story[n - 1] + 1;
        for j in 0..1000 {
            let i = n + round * 1000 + j;
            let path = file_of(dir, i);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(
                path,
                article_text(i, last_story + round * 400 + j / 3, Edit::None),
            )
            .unwrap();
        }
        let mut r = Rng(round as u64 + 99);
        for _ in 0..1000 {
            let i = r.below(n);
            let path = file_of(dir, i);
            if path.exists() {
                fs::write(&path, article_text(i, story[i], Edit::Title)).unwrap();
            }
        }
        for _ in 0..100 {
            let _ = fs::remove_file(file_of(dir, r.below(n)));
        }
    }
}
