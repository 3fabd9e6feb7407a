//! Nearest-neighbour search over unit vectors: exact (a matrix product) or HNSW (hnsw_rs).
//!
//! Exact search is the yardstick for the index's recall and the default for corpora small
//! enough that it is fast ([`EXACT_UP_TO`] articles). Above that, an HNSW graph finds the
//! candidates: hnsw_rs builds it over 8-bit copies of the vectors ([`quantize`]), and relink
//! searches, extends and keeps a flat copy of it ([`crate::graph`]); every point the search
//! keeps is compared again in full precision, so both modes report the same cosines.
//! Results are ordered by cosine, ties broken by position, and never depend on thread timing
//! up to [`PARALLEL_BUILD_ABOVE`] vectors: there the graph is built by serial insertion with
//! hnsw_rs's fixed-seed level generator, which makes the graph itself the same on every run.
//! Larger graphs are built on every core, and their build order (so a few neighbours) may
//! differ from one build to the next.

use std::path::Path;

use hnsw_rs::prelude::{Distance, Hnsw};
use ndarray::{Array2, ArrayView1};
use rayon::prelude::*;

use crate::graph::{level_of, FlatGraph};

/// Corpora up to this size are searched exactly unless told otherwise: 20,000 x 20,000 dot
/// products of 384 floats take about a second on 2 cores.
pub const EXACT_UP_TO: usize = 20_000;

/// Graphs of more vectors than this are built by parallel insertion, on every core. Serial
/// insertion makes the graph the same on every build; parallel insertion does not (the order in
/// which threads insert changes the links), so above this size a rebuilt graph can return a
/// slightly different neighbour here and there. It is only rebuilt when vectors change, and its
/// recall against exact search is what the README states either way.
pub const PARALLEL_BUILD_ABOVE: usize = EXACT_UP_TO;

fn parallel_build(n: usize) -> bool {
    n > PARALLEL_BUILD_ABOVE
}

/// How to find candidates.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Exact up to 20,000 articles, HNSW above.
    Auto,
    /// Brute force: every vector compared with every other.
    Exact,
    /// The HNSW graph.
    Hnsw,
}

impl SearchMode {
    /// Whether a corpus of `n` articles is searched through the HNSW graph.
    pub fn uses_hnsw(self, n: usize) -> bool {
        match self {
            SearchMode::Exact => false,
            SearchMode::Hnsw => true,
            SearchMode::Auto => n > EXACT_UP_TO,
        }
    }
}

/// HNSW construction and search parameters.
#[derive(Clone, Copy, Debug)]
pub struct HnswParams {
    /// Links per node and layer (hnsw_rs's max_nb_connection).
    pub m: usize,
    pub ef_construction: usize,
    /// Search breadth; raised to at least the number of neighbours asked for.
    pub ef_search: usize,
}

/// m 16 and ef_construction 100 built a 100,000-article graph in half the time of 24 and 200
/// (44 s against 95 s on 2 cores, `make bench-scale N=100000`, both with `f32` vectors), with
/// a third fewer links to hold, at recall@10 0.9929 against 0.9944 (2,000 sampled queries,
/// ef_search 128). With 8-bit vectors and the 128 points found compared again in full
/// precision, recall@10 was 0.9998, so ef_construction came down to 64: the same 100,000
/// vectors' graph builds in 16.6 s instead of 29.0 s, at recall@10 0.9995 (1,000 queries; the
/// 233 nearest, as ranking asks, 0.970 instead of 0.978; 40 gave 0.9944 and 10.3 s).
impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 64,
            ef_search: 128,
        }
    }
}

/// The graph's copy of a vector: each coordinate in 8 bits, scaled by the vector's largest
/// coordinate, after 4 bytes holding that scale (an `f32`, little-endian). A point's search
/// reads a quarter of the bytes of its `f32` row: the graph's searches are bound by memory
/// reads, not arithmetic (a random 384-d row is about 9x faster to compare in 8 bits), and the
/// graph holds 388 bytes a vector instead of 1,536. The graph only finds candidates: every
/// similarity relink reports is recomputed from the `f32` rows.
pub fn quantize(v: &[f32]) -> Vec<i8> {
    let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    let mut out = Vec::with_capacity(QUANTIZED_HEADER + v.len());
    out.extend(scale.to_le_bytes().map(|b| b as i8));
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    out
}

/// [`quantize`] of a row or a query, without copying it first when it is contiguous.
fn quantize_view(v: ArrayView1<f32>) -> Vec<i8> {
    match v.as_slice() {
        Some(s) => quantize(s),
        None => quantize(&v.to_vec()),
    }
}

/// Bytes before the coordinates of a [`quantize`]d vector: its scale.
const QUANTIZED_HEADER: usize = 4;

fn quantized_scale(v: &[i8]) -> f32 {
    f32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8])
}

/// Cosine distance between [`quantize`]d unit vectors, `1 - a.b`, clamped at 0 (it cannot be
/// negative for unit vectors; rounding can make it so).
#[derive(Clone, Copy, Debug, Default)]
pub struct QuantizedCosine;

impl Distance<i8> for QuantizedCosine {
    fn eval(&self, a: &[i8], b: &[i8]) -> f32 {
        let products = dot_i8(&a[QUANTIZED_HEADER..], &b[QUANTIZED_HEADER..]);
        (1.0 - quantized_scale(a) * quantized_scale(b) * products as f32).max(0.0)
    }
}

/// The graph relink searches: quantized vectors, cosine distance.
pub type HnswGraph = Hnsw<'static, i8, QuantizedCosine>;

/// Integer dot product of 8-bit vectors (exact: 384 x 127 x 127 fits an `i32` many times).
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if has_vnni() {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_i8_vnni(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_i8_avx2(a, b) };
        }
    }
    dot_i8_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_portable(a, b)
}

/// Whether the CPU has AVX-512 with VNNI (and the byte instructions every VNNI CPU has), which
/// the 8-bit kernels here and in [`crate::coarse`] are compiled for.
pub(crate) fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`dot_i8`] with AVX-512 VNNI, the same integer: `vpdpbusd` multiplies unsigned bytes by
/// signed ones, so `a` is shifted to `a + 128` (its sign bit flipped) and `128 x sum(b)`, summed
/// by a second `vpdpbusd` against ones, taken off. 64 coordinates a step, the last step masked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_i8_vnni(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let flip = _mm512_set1_epi8(i8::MIN);
    let ones = _mm512_set1_epi8(1);
    let (mut products, mut sums) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let mut i = 0;
    while i < n {
        let mask: __mmask64 = if n - i >= 64 {
            !0
        } else {
            (1u64 << (n - i)) - 1
        };
        let va = _mm512_maskz_loadu_epi8(mask, pa.add(i));
        let vb = _mm512_maskz_loadu_epi8(mask, pb.add(i));
        // Masked-off bytes of `a + 128` are 0 as well, so they add nothing to either sum.
        let shifted = _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(va, flip));
        products = _mm512_dpbusd_epi32(products, shifted, vb);
        sums = _mm512_dpbusd_epi32(sums, ones, vb);
        i += 64;
    }
    _mm512_reduce_add_epi32(products) - 128 * _mm512_reduce_add_epi32(sums)
}

/// Thirty-two independent sums, which the compiler turns into SIMD.
#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x as i32 * y as i32)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..32 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// Dot product. Every cosine the ranker reports goes through here, so an article pair gets the
/// same number whichever command computed it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

/// The portable loop compiled for AVX2 and FMA: twice the width of the default SSE2 build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

/// Eight independent sums, which the compiler turns into SIMD.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A searchable set of unit vectors (one row per article).
pub struct VectorIndex {
    vectors: Array2<f32>,
    graph: Option<Graph>,
}

/// The HNSW graph and the rows its points stand for. A point is one distinct text (its cache
/// key): rows with the same text share it, and a point whose text no article holds any more is
/// masked (left out of every answer) until the graph is rebuilt.
struct Graph {
    flat: FlatGraph,
    params: HnswParams,
    /// point -> the rows it stands for in this corpus; empty for a masked point
    rows: Vec<Vec<u32>>,
}

/// A graph is rebuilt from scratch rather than kept when more than this share of its points is
/// masked (texts edited away or deleted), or when the texts to add outnumber half of it: masked
/// points still cost search time and recall, and many insertions into a small graph are no
/// cheaper than a build.
pub const MASKED_SHARE_LIMIT: f64 = 0.2;

/// What [`VectorIndex::build_or_load`] did with the graph kept in the state folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphReuse {
    /// The stored graph was loaded (and, where needed, extended) instead of built.
    pub kept: bool,
    /// Texts inserted into the kept graph.
    pub added: usize,
    /// Points of texts no article holds any more, masked.
    pub masked: usize,
}

/// One neighbour: its row and its cosine to the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    pub index: usize,
    pub similarity: f32,
}

impl VectorIndex {
    /// Builds the index over `vectors` (rows must be unit length); for a graph, every row is a
    /// point of its own.
    pub fn build(vectors: Array2<f32>, mode: SearchMode, params: HnswParams) -> VectorIndex {
        let graph = mode.uses_hnsw(vectors.nrows()).then(|| {
            let firsts: Vec<usize> = (0..vectors.nrows()).collect();
            let hnsw = build_hnsw_rows(&vectors, &firsts, params, parallel_build(firsts.len()));
            Graph {
                flat: FlatGraph::from_hnsw(hnsw),
                params,
                rows: (0..vectors.nrows() as u32).map(|r| vec![r]).collect(),
            }
        });
        VectorIndex { vectors, graph }
    }

    /// Like [`build`](Self::build), with one point per distinct text (`keys[row]`, the text's
    /// cache key) and the graph kept in `dir` (`index.graph`, the flat graph in
    /// [`FlatGraph::write`]'s format; `index.keys` with each point's key; and `index.id` naming
    /// the model, the parameters and each file's size and checksum). A kept graph of the same
    /// model and parameters is loaded and brought up to date: texts it lacks are inserted
    /// ([`FlatGraph::insert`]), texts no row holds are masked, and the graph is saved again;
    /// beyond [`MASKED_SHARE_LIMIT`] it is rebuilt. Any problem with the stored files means a
    /// rebuild, never a failure.
    pub fn build_or_load(
        vectors: Array2<f32>,
        keys: &[u128],
        mode: SearchMode,
        params: HnswParams,
        dir: &Path,
        model_id: &str,
    ) -> (VectorIndex, GraphReuse) {
        if !mode.uses_hnsw(vectors.nrows()) {
            return (
                VectorIndex {
                    vectors,
                    graph: None,
                },
                GraphReuse::default(),
            );
        }
        let id = format!(
            "relink-hnsw 5 i8 {} {} {} {}\n",
            model_id.replace(['\n', ' '], "_"),
            vectors.ncols(),
            params.m,
            params.ef_construction
        );
        let id_path = dir.join("index.id");
        let width = QUANTIZED_HEADER + vectors.ncols();
        if let Some((mut flat, mut point_keys)) = load_graph(dir, &id_path, &id, width) {
            let kept = point_keys.len();
            let (rows, first_rows) = assign_points(&mut point_keys, keys);
            let masked = rows.iter().filter(|r| r.is_empty()).count();
            let added = first_rows.len();
            if (masked as f64) <= MASKED_SHARE_LIMIT * point_keys.len() as f64 && added * 2 <= kept
            {
                // Serial insertion, each text at the layer its key draws: the same graph from
                // the same kept graph and texts.
                for (i, &r) in first_rows.iter().enumerate() {
                    let level = level_of(point_keys[kept + i], params.m);
                    flat.insert(
                        &quantize_view(vectors.row(r)),
                        level,
                        params.ef_construction,
                    );
                }
                if added > 0 {
                    save_graph(&flat, &point_keys, dir, &id_path, &id);
                }
                let graph = Graph { flat, params, rows };
                return (
                    VectorIndex {
                        vectors,
                        graph: Some(graph),
                    },
                    GraphReuse {
                        kept: true,
                        added,
                        masked,
                    },
                );
            }
        }
        // A new graph: one point per distinct text, in order of first appearance.
        let mut point_keys = Vec::new();
        let (rows, first_rows) = assign_points(&mut point_keys, keys);
        let flat = FlatGraph::from_hnsw(build_hnsw_rows(
            &vectors,
            &first_rows,
            params,
            parallel_build(first_rows.len()),
        ));
        save_graph(&flat, &point_keys, dir, &id_path, &id);
        (
            VectorIndex {
                vectors,
                graph: Some(Graph { flat, params, rows }),
            },
            GraphReuse::default(),
        )
    }

    /// An index over `vectors` searched through an HNSW graph built elsewhere (the benches
    /// compare a parallel-built graph).
    pub fn with_hnsw(vectors: Array2<f32>, hnsw: HnswGraph, params: HnswParams) -> VectorIndex {
        let rows = (0..vectors.nrows() as u32).map(|r| vec![r]).collect();
        VectorIndex {
            vectors,
            graph: Some(Graph {
                flat: FlatGraph::from_hnsw(hnsw),
                params,
                rows,
            }),
        }
    }

    pub fn is_hnsw(&self) -> bool {
        self.graph.is_some()
    }

    pub fn len(&self) -> usize {
        self.vectors.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.nrows() == 0
    }

    pub fn vectors(&self) -> &Array2<f32> {
        &self.vectors
    }

    /// Cosine of rows `a` and `b`.
    pub fn similarity(&self, a: usize, b: usize) -> f32 {
        self.cosine_to(a, self.vectors.row(b))
    }

    /// Cosine of row `a` and a unit vector.
    pub fn cosine_to(&self, a: usize, v: ArrayView1<f32>) -> f32 {
        match (self.vectors.row(a).to_slice(), v.to_slice()) {
            (Some(x), Some(y)) => dot(x, y),
            _ => self.vectors.row(a).dot(&v),
        }
    }

    /// The `k` rows nearest to `query`, best first.
    pub fn search(&self, query: ArrayView1<f32>, k: usize) -> Vec<Neighbour> {
        let k = k.min(self.len());
        match &self.graph {
            Some(g) => {
                let q = quantize_view(query);
                // Every point the search keeps is compared again in full precision, so a
                // breadth beyond `k` (ef_search) also makes up for the quantized distances.
                let ef = g.params.ef_search.max(k);
                let live = |p: u32| g.rows.get(p as usize).is_some_and(|r| !r.is_empty());
                let found = g.flat.search(&q, ef, live);
                // Each point stands for its rows; similarities are recomputed here so that both
                // modes return the same numbers.
                let mut out: Vec<Neighbour> = found
                    .into_iter()
                    .flat_map(|f| g.rows.get(f.point as usize).into_iter().flatten())
                    .map(|&r| Neighbour {
                        index: r as usize,
                        similarity: self.cosine_to(r as usize, query),
                    })
                    .collect();
                sort_neighbours(&mut out);
                out.truncate(k);
                out
            }
            None => exact_top_k(&self.vectors, query, k),
        }
    }

    /// The `k` rows nearest to `query` among `rows`, best first, by exact cosine (each through
    /// [`dot`], so the numbers and the order are those of an exact search of every row).
    pub fn search_among(&self, query: ArrayView1<f32>, k: usize, rows: &[usize]) -> Vec<Neighbour> {
        let q = query.to_vec();
        let mut all: Vec<Neighbour> = rows
            .iter()
            .map(|&index| Neighbour {
                index,
                similarity: dot(self.vectors.row(index).to_slice().expect("rows"), &q),
            })
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Vec::new();
        }
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, cmp_neighbours);
            all.truncate(k);
        }
        sort_neighbours(&mut all);
        all
    }

    /// The `k` nearest rows of every row (the row itself included), computed in parallel.
    pub fn search_all(&self, k: usize) -> Vec<Vec<Neighbour>> {
        self.map_all(k, |_, neighbours| neighbours)
    }

    /// `f(row, its k nearest rows)` for every row (the row itself among them), in parallel,
    /// in row order. The neighbours of a row are dropped once `f` has them, so memory holds
    /// those of a few blocks of rows at a time, not of the whole corpus (at a million articles
    /// and a pool of 200, all of them would be 3.7 GB).
    pub fn map_all<T: Send>(
        &self,
        k: usize,
        f: impl Fn(usize, Vec<Neighbour>) -> T + Sync,
    ) -> Vec<T> {
        if self.graph.is_some() {
            return (0..self.len())
                .into_par_iter()
                .map(|i| f(i, self.search(self.vectors.row(i), k)))
                .collect();
        }
        // Exact: a block of rows at a time, each block one matrix product.
        const BLOCK: usize = 256;
        let n = self.len();
        let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
        starts
            .into_par_iter()
            .flat_map(|start| {
                let end = (start + BLOCK).min(n);
                let block = self.vectors.slice(ndarray::s![start..end, ..]);
                let sims = block.dot(&self.vectors.t());
                let rounding = product_rounding(self.vectors.ncols());
                // The rows of a block in parallel too: a small corpus is one block.
                (0..end - start)
                    .into_par_iter()
                    .map(|r| {
                        let q = self.vectors.row(start + r);
                        let q = q.to_slice().expect("rows are contiguous");
                        let row = sims.row(r);
                        let top = top_k_of(row.as_slice().unwrap(), k, rounding, |c| {
                            dot(self.vectors.row(c).to_slice().expect("rows"), q)
                        });
                        f(start + r, top)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Loads the graph kept in `dir` when `index.id` names the graph wanted (`id`) and every file
/// still has the size and checksum recorded when it was written, its points `width` bytes.
/// `None` on any doubt or error.
fn load_graph(
    dir: &Path,
    id_path: &Path,
    id: &str,
    width: usize,
) -> Option<(FlatGraph, Vec<u128>)> {
    let recorded = crate::fsutil::read_regular_string(id_path).ok()?;
    let mut lines = recorded.strip_prefix(id)?.split_inclusive('\n');
    let graph_line = lines.next()?;
    let key_bytes = crate::fsutil::read_regular(&dir.join(KEYS_FILE)).ok()?;
    if lines.next()? != file_line(KEYS_FILE, &key_bytes) || lines.next().is_some() {
        return None;
    }
    let mut fields = graph_line.strip_prefix(GRAPH_FILE)?.split_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let hash = u64::from_str_radix(fields.next()?, 16).ok()?;
    let file = crate::fsutil::open_regular(&dir.join(GRAPH_FILE)).ok()?;
    if file.metadata().ok()?.len() != size {
        return None;
    }
    let (flat, read_hash) =
        FlatGraph::read(std::io::BufReader::with_capacity(1 << 20, file), size).ok()?;
    if read_hash != hash || (!flat.is_empty() && flat.width() != width) {
        return None;
    }
    let keys: Vec<u128> = key_bytes
        .chunks_exact(16)
        .map(|c| u128::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (flat.len() == keys.len()).then_some((flat, keys))
}

/// Gives every row the point of its text key: the point already in `point_keys`, or a new one
/// appended to it. Returns each point's rows (empty for a kept point no row has) and the first
/// row of each new point, in order.
fn assign_points(point_keys: &mut Vec<u128>, keys: &[u128]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut point_of: std::collections::HashMap<u128, u32> = point_keys
        .iter()
        .enumerate()
        .map(|(p, k)| (*k, p as u32))
        .collect();
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); point_keys.len()];
    let mut first_rows = Vec::new();
    for (r, k) in keys.iter().enumerate() {
        let p = *point_of.entry(*k).or_insert_with(|| {
            point_keys.push(*k);
            rows.push(Vec::new());
            first_rows.push(r);
            (point_keys.len() - 1) as u32
        });
        rows[p as usize].push(r as u32);
    }
    (rows, first_rows)
}

/// Each point's text key, in point order.
const KEYS_FILE: &str = "index.keys";

/// The graph, as [`FlatGraph::write`] writes it.
const GRAPH_FILE: &str = "index.graph";

/// hnsw_rs's dump of the graph, kept before relink wrote its own format: removed when a graph
/// is saved.
const OLD_DUMP_FILES: [&str; 2] = ["index.hnsw.graph", "index.hnsw.data"];

/// A kept graph's file as `index.id` records it: its name, size and xxh3.
fn file_record(name: &str, size: u64, hash: u64) -> String {
    format!("{name} {size} {hash:016x}\n")
}

/// [`file_record`] of a file whose bytes are at hand.
fn file_line(name: &str, bytes: &[u8]) -> String {
    file_record(name, bytes.len() as u64, xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Writes the graph and its keys into `dir` and then its identity with every file's size and
/// checksum, so a file cut short by a kill or damaged later is never loaded (the identity is
/// removed first and written last). A failed save only costs the next run a rebuild.
fn save_graph(flat: &FlatGraph, keys: &[u128], dir: &Path, id_path: &Path, id: &str) {
    let _ = std::fs::remove_file(id_path);
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    for old in OLD_DUMP_FILES {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
    if crate::fsutil::write_new(&dir.join(KEYS_FILE), &key_bytes).is_err() {
        return;
    }
    let mut written = None;
    let saved = crate::fsutil::write_new_with(&dir.join(GRAPH_FILE), |w| {
        written = Some(flat.write(w)?);
        Ok(())
    });
    let (Ok(()), Some((size, hash))) = (saved, written) else {
        return;
    };
    let record = format!(
        "{id}{}{}",
        file_record(GRAPH_FILE, size, hash),
        file_line(KEYS_FILE, &key_bytes)
    );
    let _ = crate::fsutil::write_new(id_path, record.as_bytes());
}

/// Builds a graph whose point `p` is row `rows[p]` of `vectors`.
fn build_hnsw_rows(
    vectors: &Array2<f32>,
    rows: &[usize],
    params: HnswParams,
    parallel: bool,
) -> HnswGraph {
    let n = rows.len().max(1);
    // The layers a point inserted later into the flat copy can reach; the level generator
    // rarely goes past a few of them anyway.
    let max_layer = crate::graph::MAX_LAYERS;
    let hnsw = HnswGraph::new(
        params.m,
        n,
        max_layer,
        params.ef_construction,
        QuantizedCosine,
    );
    let row = |r: usize| quantize_view(vectors.row(r));
    if parallel {
        // A block of rows quantized at a time: hnsw_rs copies each into its point, so no copy
        // of every vector is made first (at a million 384-d vectors it would be 388 MB more).
        for (b, block) in rows.chunks(BUILD_BLOCK).enumerate() {
            let start = b * BUILD_BLOCK;
            let quantized: Vec<Vec<i8>> = block.par_iter().map(|&r| row(r)).collect();
            let with_ids: Vec<(&[i8], usize)> =
                quantized.iter().map(Vec::as_slice).zip(start..).collect();
            hnsw.parallel_insert_slice(&with_ids);
        }
    } else {
        for (p, &r) in rows.iter().enumerate() {
            hnsw.insert_slice((&row(r), p));
        }
    }
    hnsw
}

/// Rows quantized and inserted at a time by a parallel build.
const BUILD_BLOCK: usize = 16_384;

/// Builds an HNSW graph over `vectors`. Serial insertion keeps the graph deterministic;
/// `parallel` trades that for build speed (the bench compares both).
pub fn build_hnsw(vectors: &Array2<f32>, params: HnswParams, parallel: bool) -> HnswGraph {
    let rows: Vec<usize> = (0..vectors.nrows()).collect();
    build_hnsw_rows(vectors, &rows, params, parallel)
}

/// Exact `k` nearest rows of `vectors` to `query`, best first.
pub fn exact_top_k(vectors: &Array2<f32>, query: ArrayView1<f32>, k: usize) -> Vec<Neighbour> {
    let sims = vectors.dot(&query);
    let q = query.to_vec();
    top_k_of(
        sims.as_slice().unwrap(),
        k,
        product_rounding(q.len()),
        |c| dot(vectors.row(c).to_slice().expect("rows are contiguous"), &q),
    )
}

/// Most a matrix product's cosine of two unit vectors of `dim` coordinates can differ from
/// [`dot`]'s: each is within `dim` roundings (2^-24) of the exact sum, with room to spare.
pub fn product_rounding(dim: usize) -> f32 {
    1.5 * dim as f32 * f32::EPSILON
}

/// The `k` best of `sims` (cosines from a matrix product, one per row), with their cosines
/// recomputed by `exact` (through [`dot`]) and ranked by those: the rows within rounding of
/// the k-th are all recomputed, so that a search of one query and a search of all of them
/// pick the same rows, ties included, and report the same numbers.
fn top_k_of(sims: &[f32], k: usize, rounding: f32, exact: impl Fn(usize) -> f32) -> Vec<Neighbour> {
    let mut all: Vec<Neighbour> = sims
        .iter()
        .enumerate()
        .map(|(index, &similarity)| Neighbour { index, similarity })
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    let mut keep = all.len();
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, cmp_neighbours);
        let floor = all[k - 1].similarity - rounding;
        keep = k;
        for i in k..all.len() {
            if all[i].similarity >= floor {
                all.swap(keep, i);
                keep += 1;
            }
        }
    }
    // A fresh vector: the candidates' row of n would otherwise stay allocated with every
    // result (n x n x 8 bytes over a whole corpus: 7 GB at 21,000 articles).
    let mut top: Vec<Neighbour> = all[..keep]
        .iter()
        .map(|n| Neighbour {
            index: n.index,
            similarity: exact(n.index),
        })
        .collect();
    sort_neighbours(&mut top);
    top.truncate(k);
    top
}

fn cmp_neighbours(a: &Neighbour, b: &Neighbour) -> std::cmp::Ordering {
    b.similarity
        .total_cmp(&a.similarity)
        .then(a.index.cmp(&b.index))
}

fn sort_neighbours(v: &mut [Neighbour]) {
    v.sort_unstable_by(cmp_neighbours);
}

/// Share of the exact top-`k` neighbours that `found` also holds, averaged over queries: the
/// index's recall@k. `queries[i]` is the row that lists `exact[i]` and `found[i]` were searched
/// for; that row itself is left out of both.
pub fn recall_at_k(
    queries: &[usize],
    exact: &[Vec<Neighbour>],
    found: &[Vec<Neighbour>],
    k: usize,
) -> f64 {
    let mut total = 0.0;
    let mut counted = 0usize;
    for ((&q, e), f) in queries.iter().zip(exact).zip(found) {
        let truth: Vec<usize> = e
            .iter()
            .map(|n| n.index)
            .filter(|&i| i != q)
            .take(k)
            .collect();
        if truth.is_empty() {
            continue;
        }
        let got: std::collections::HashSet<usize> = f
            .iter()
            .map(|n| n.index)
            .filter(|&i| i != q)
            .take(k)
            .collect();
        total += truth.iter().filter(|i| got.contains(i)).count() as f64 / truth.len() as f64;
        counted += 1;
    }
    if counted == 0 {
        1.0
    } else {
        total / counted as f64
    }
}

/// The next number of the splitmix64 sequence at `state`: a tiny, fixed, seedable generator for
/// results that must be the same on every run.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random_unit_vectors;

    #[test]
    fn exact_search_finds_itself_first_and_orders_by_cosine() {
        let v = random_unit_vectors(300, 16, 1);
        let idx = VectorIndex::build(v.clone(), SearchMode::Exact, HnswParams::default());
        let found = idx.search(v.row(7), 5);
        assert_eq!(found[0].index, 7);
        assert!((found[0].similarity - 1.0).abs() < 1e-5);
        assert!(found.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        let all = idx.search_all(5);
        let ids = |v: &[Neighbour]| v.iter().map(|n| n.index).collect::<Vec<_>>();
        assert_eq!(ids(&all[7]), ids(&found));
    }

    #[test]
    fn hnsw_recall_against_exact_is_high() {
        let v = random_unit_vectors(2000, 32, 2);
        let exact = VectorIndex::build(v.clone(), SearchMode::Exact, HnswParams::default());
        let hnsw = VectorIndex::build(v, SearchMode::Hnsw, HnswParams::default());
        assert!(hnsw.is_hnsw());
        let all: Vec<usize> = (0..2000).collect();
        let r = recall_at_k(&all, &exact.search_all(11), &hnsw.search_all(11), 10);
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn hnsw_is_deterministic() {
        let v = random_unit_vectors(1500, 24, 3);
        let a =
            VectorIndex::build(v.clone(), SearchMode::Hnsw, HnswParams::default()).search_all(10);
        let b = VectorIndex::build(v, SearchMode::Hnsw, HnswParams::default()).search_all(10);
        assert_eq!(a, b);
    }

    #[test]
    fn quantized_cosine_is_close_to_the_exact_one() {
        let v = random_unit_vectors(200, 384, 4);
        let q: Vec<Vec<i8>> = v
            .rows()
            .into_iter()
            .map(|r| quantize(r.to_slice().unwrap()))
            .collect();
        assert_eq!(q[0].len(), 4 + 384);
        let mut worst = 0f32;
        for a in 0..200 {
            assert!(QuantizedCosine.eval(&q[a], &q[a]) < 0.002);
            for b in 0..200 {
                let exact = 1.0 - dot(v.row(a).to_slice().unwrap(), v.row(b).to_slice().unwrap());
                worst = worst.max((QuantizedCosine.eval(&q[a], &q[b]) - exact.max(0.0)).abs());
            }
        }
        assert!(worst < 0.01, "worst error {worst}");
        // A zero vector (no text) quantizes to zeros, at distance 1 from everything.
        let zero = quantize(&[0.0; 384]);
        assert!(zero[4..].iter().all(|&x| x == 0));
        assert_eq!(QuantizedCosine.eval(&zero, &q[0]), 1.0);
        // The largest coordinate keeps its sign and lands on the end of the scale.
        let mut one = vec![0.0f32; 384];
        one[7] = -1.0;
        assert_eq!(quantize(&one)[4 + 7], -127);
    }

    #[test]
    fn every_integer_dot_product_kernel_is_exact() {
        let mut state = 11u64;
        let mut byte = || (splitmix64(&mut state) % 256) as u8 as i8;
        for len in (0..200).chain([383, 384, 385, 448, 1000]) {
            let mut a: Vec<i8> = (0..len).map(|_| byte()).collect();
            let mut b: Vec<i8> = (0..len).map(|_| byte()).collect();
            if len > 2 {
                // The ends of the scale, where a shift by 128 would overflow a byte.
                (a[0], b[0], a[1], b[1]) = (i8::MIN, i8::MIN, i8::MAX, i8::MIN);
            }
            let want: i32 = a.iter().zip(&b).map(|(&x, &y)| x as i32 * y as i32).sum();
            assert_eq!(dot_i8(&a, &b), want, "len {len}");
            assert_eq!(dot_i8_portable(&a, &b), want, "len {len}");
            #[cfg(target_arch = "x86_64")]
            if has_vnni() {
                // SAFETY: the CPU has the features.
                assert_eq!(unsafe { dot_i8_vnni(&a, &b) }, want, "len {len}");
            }
        }
    }

    #[test]
    fn recall_counts_misses() {
        let n = |i| Neighbour {
            index: i,
            similarity: 0.0,
        };
        let exact = vec![vec![n(0), n(1), n(2)]];
        let found = vec![vec![n(0), n(1), n(3)]];
        assert!((recall_at_k(&[0], &exact, &found, 2) - 0.5).abs() < 1e-9);
    }
}
#[cfg(test)]
mod kept_graph_tests {
    use super::*;
    use crate::testing::random_unit_vectors;

    fn run(v: &Array2<f32>, keys: &[u128], dir: &Path) -> (VectorIndex, GraphReuse) {
        VectorIndex::build_or_load(
            v.clone(),
            keys,
            SearchMode::Hnsw,
            HnswParams::default(),
            dir,
            "model",
        )
    }

    #[test]
    fn texts_are_added_masked_and_shared_by_rows() {
        let dir = tempfile::tempdir().unwrap();
        let v = random_unit_vectors(60, 8, 1);
        let mut keys: Vec<u128> = (0..60u128).collect();
        assert!(!run(&v, &keys, dir.path()).1.kept);
        keys[0] = 1_000;
        let (index, r) = run(&v, &keys, dir.path());
        assert_eq!((r.kept, r.added, r.masked), (true, 1, 1));
        // Masked points never come back; the new text answers as row 0.
        let found = index.search(v.row(0), 5);
        assert_eq!(found[0].index, 0);
        let (_, r) = run(&v, &keys, dir.path());
        assert_eq!((r.kept, r.added, r.masked), (true, 0, 1));
        // Two rows with one text share a point, and both are answered.
        keys[1] = keys[2];
        let mut v2 = v.clone();
        let row2 = v.row(2).to_owned();
        v2.row_mut(1).assign(&row2);
        let (index, r) = run(&v2, &keys, dir.path());
        assert_eq!((r.kept, r.added, r.masked), (true, 0, 2));
        let found: Vec<usize> = index.search(v2.row(2), 3).iter().map(|n| n.index).collect();
        assert!(found.contains(&1) && found.contains(&2), "{found:?}");
        // Another model: a new graph.
        let (_, r) = VectorIndex::build_or_load(
            v2,
            &keys,
            SearchMode::Hnsw,
            HnswParams::default(),
            dir.path(),
            "other",
        );
        assert!(!r.kept);
    }
}
