//! The real model: reference values, batching, STS-B quality, and bf16 against fp32.

mod common;

use ndarray::Array2;
use relink::embed::{Embedder, Precision, TextEmbedder};

/// Tests that run the model hold this lock: libtorch already uses every core, and two models
/// running at once on 2 cores are several times slower than one after the other.
static MODEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MODEL.lock().unwrap_or_else(|e| e.into_inner())
}

const FOX: &str = "The quick brown fox jumps over the lazy dog.";
const FOX_REF: [f32; 5] = [0.04393357, 0.05893441, 0.04817835, 0.0775481, 0.02674444];

fn load(precision: Precision, batch: usize) -> Embedder {
    Embedder::load(&common::model_dir(), precision, batch).expect("model loads")
}

#[test]
fn fp32_matches_the_reference_embedding() {
    let _model = lock();
    let mut e = load(Precision::Fp32, 16);
    let v = e.embed(&[FOX]).unwrap();
    assert_eq!(v.ncols(), 384);
    for (got, want) in v.row(0).iter().zip(FOX_REF) {
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }
    assert!((v.row(0).dot(&v.row(0)) - 1.0).abs() < 1e-5);
}

#[test]
fn vectors_do_not_depend_on_batch_size_or_order() {
    let _model = lock();
    let texts = [
        "Diablo IV launches in June",
        FOX,
        "A much longer sentence about the season of blood, vampires, and a new questline in Sanctuary.",
        "Patch notes",
        "Blizzard announces the first expansion, Vessel of Hatred, for 2024",
    ];
    let one = load(Precision::Fp32, 1).embed(&texts).unwrap();
    let many = load(Precision::Fp32, 4).embed(&texts).unwrap();
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    let rev = load(Precision::Fp32, 16).embed(&reversed).unwrap();
    for i in 0..texts.len() {
        for j in 0..384 {
            assert!((one[[i, j]] - many[[i, j]]).abs() < 1e-5);
            assert!((one[[i, j]] - rev[[texts.len() - 1 - i, j]]).abs() < 1e-5);
        }
    }
}

#[test]
fn a_missing_model_file_is_named_with_the_fetch_command() {
    let _model = lock();
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(dir.path(), Precision::Fp32, 16)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("fetch-deps.sh"),
        "{err}"
    );
    // A damaged weights file is an error, not a panic.
    for f in relink::embed::MODEL_FILES {
        let target = dir.path().join(f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(common::model_dir().join(f), &target).unwrap();
    }
    std::fs::write(dir.path().join("model.safetensors"), b"not a model").unwrap();
    let err = Embedder::load(dir.path(), Precision::Fp32, 16)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

/// Spearman rank correlation.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(x: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt())
}

#[test]
fn spearman_is_right_on_known_cases() {
    assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
    assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
}

/// How many STS-B pairs and diablo4 texts the bf16 tests use: all of them where the CPU computes
/// bf16 natively; elsewhere libtorch emulates bf16 at about 1.3 texts/s (measured on a 2-core
/// AVX2 EPYC), so the same comparison runs on a prefix, against fp32 on the same prefix.
fn bf16_sample(full: usize) -> usize {
    if relink::embed::cpu_has_native_bf16() {
        full
    } else {
        eprintln!("no native bf16 on this CPU: bf16 is checked on a sample (the full sets run where bf16 is native)");
        full.min(64)
    }
}

fn sts_spearman(precision: Precision, pairs: Option<usize>) -> Option<f64> {
    let shared = common::shared()?;
    let text = std::fs::read_to_string(shared.join("stsb/sts-test.csv")).unwrap();
    let mut scores = Vec::new();
    let mut left = Vec::new();
    let mut right = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 7 {
            continue;
        }
        let Ok(score) = cols[4].parse::<f64>() else {
            continue;
        };
        scores.push(score);
        left.push(cols[5]);
        right.push(cols[6]);
    }
    assert!(scores.len() > 1300, "{} pairs", scores.len());
    if let Some(n) = pairs {
        scores.truncate(n);
        left.truncate(n);
        right.truncate(n);
    }
    let mut e = load(precision, 16);
    let a = e.embed(&left).unwrap();
    let b = e.embed(&right).unwrap();
    let cos: Vec<f64> = (0..scores.len())
        .map(|i| a.row(i).dot(&b.row(i)) as f64)
        .collect();
    Some(spearman(&cos, &scores))
}

#[test]
fn sts_benchmark_spearman_fp32() {
    let _model = lock();
    if let Some(rho) = sts_spearman(Precision::Fp32, None) {
        eprintln!("STS-B test, fp32: Spearman {rho:.4}");
        assert!(rho >= 0.80, "Spearman {rho}");
    }
}

#[test]
fn sts_benchmark_spearman_bf16() {
    let _model = lock();
    let n = bf16_sample(usize::MAX);
    if n == usize::MAX {
        if let Some(rho) = sts_spearman(Precision::Bf16, None) {
            eprintln!("STS-B test, bf16: Spearman {rho:.4}");
            assert!(rho >= 0.80, "Spearman {rho}");
        }
    } else if let (Some(bf16), Some(fp32)) = (
        sts_spearman(Precision::Bf16, Some(n)),
        sts_spearman(Precision::Fp32, Some(n)),
    ) {
        eprintln!("STS-B test, first {n} pairs: Spearman bf16 {bf16:.4}, fp32 {fp32:.4}");
        assert!((bf16 - fp32).abs() <= 0.02, "bf16 {bf16} vs fp32 {fp32}");
    }
}

fn top10(v: &Array2<f32>) -> Vec<Vec<usize>> {
    let sims = v.dot(&v.t());
    sims.rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let mut idx: Vec<usize> = (0..row.len()).filter(|&j| j != i).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            idx.truncate(10);
            idx
        })
        .collect()
}

#[test]
fn bf16_keeps_neighbours_of_fp32_on_diablo4() {
    let _model = lock();
    let Some(shared) = common::shared() else {
        return;
    };
    let corpus = relink::corpus::read_corpus(&shared.join("corpora/diablo4")).unwrap();
    let n = bf16_sample(corpus.articles.len());
    let texts: Vec<String> = corpus.articles.iter().take(n).map(|a| a.text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let fp32 = load(Precision::Fp32, 16).embed(&refs).unwrap();
    let bf16 = load(Precision::Bf16, 16).embed(&refs).unwrap();
    let min_cos = (0..texts.len())
        .map(|i| fp32.row(i).dot(&bf16.row(i)))
        .fold(f32::INFINITY, f32::min);
    let (a, b) = (top10(&fp32), top10(&bf16));
    let same: usize = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().filter(|i| y.contains(i)).count())
        .sum();
    let share = same as f64 / (10 * texts.len()) as f64;
    eprintln!(
        "diablo4, {n} texts: min cosine(fp32, bf16) {min_cos:.5}, top-10 neighbours kept {:.2}%",
        100.0 * share
    );
    assert!(min_cos >= 0.999, "min cosine {min_cos}");
    assert!(share >= 0.98, "top-10 overlap {share}");
}

#[test]
fn the_model_identity_is_remembered_until_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let memo = dir.path().join("model-ids.tsv");
    let model = common::model_dir();
    let full = relink::embed::model_id(&model, Precision::Fp32, None).unwrap();
    assert_eq!(
        relink::embed::model_id(&model, Precision::Fp32, Some(&memo)).unwrap(),
        full
    );
    let text = std::fs::read_to_string(&memo).unwrap();
    let (key, digest) = text.trim().split_once('\t').unwrap();
    assert!(full.contains(digest));
    // The remembered digest is what a second call returns (no rehash): prove it with a fake one.
    std::fs::write(&memo, format!("{key}\tfeedfeedfeedfeed\n")).unwrap();
    let remembered = relink::embed::model_id(&model, Precision::Fp32, Some(&memo)).unwrap();
    assert!(remembered.contains("/feedfeedfeedfeed/"), "{remembered}");
    // A model folder elsewhere (other paths) is keyed apart and hashed for real.
    let copy = dir.path().join("copy");
    for f in relink::embed::MODEL_FILES {
        let target = copy.join(f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(model.join(f), &target).unwrap();
    }
    let copied = relink::embed::model_id(&copy, Precision::Fp32, Some(&memo)).unwrap();
    assert_eq!(copied.split('/').nth(1), full.split('/').nth(1));
}
