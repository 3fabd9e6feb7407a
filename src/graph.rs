//! The HNSW graph as searched: a flat copy of the graph hnsw_rs built or loaded.
//!
//! hnsw_rs builds, extends and saves the graph; its own search walks points held behind
//! reference-counted pointers and locks, with a hashed set of the points visited, and that
//! bookkeeping, not the distances, was most of a search's time (31% of a cold 30,000-article
//! refresh in its layer search against 18% in the distances it computes). Once a graph is built
//! or brought up to date, relink copies it into flat arrays (every point's quantized vector in one
//! block, every point's layer-0 links in another, the few upper-layer links by point) and
//! searches that, the standard HNSW way: a greedy descent from the entry point through the
//! upper layers, then a best-first search of layer 0 keeping the `ef` nearest points found. The
//! copy holds 4 bytes a link and 388 bytes a 384-d point, against hnsw_rs's pointers and
//! allocations, so hnsw_rs's structure is dropped once it is made.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use hnsw_rs::prelude::Distance;
use rayon::prelude::*;

use crate::index::{HnswGraph, QuantizedCosine};

/// Points whose links [`FlatGraph::from_hnsw`] gathers at a time.
const LINK_BLOCK: usize = 65_536;

/// A searchable copy of an HNSW graph. Point `p` is hnsw_rs's data id `p`.
pub struct FlatGraph {
    /// Length of one point's quantized vector.
    width: usize,
    /// Every point's quantized vector, point after point.
    data: Vec<i8>,
    /// Layer-0 links of point `p`: `links[offsets[p]..offsets[p + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// Links on layers 1 and up, for the points that have them: `upper[&p][layer - 1]`.
    upper: HashMap<u32, Vec<Vec<u32>>>,
    /// Where every search starts: a point of the top layer.
    entry: u32,
    top: usize,
}

/// A point found and its distance to the query (`1 - cosine`, from quantized vectors).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Found {
    pub point: u32,
    pub distance: f32,
}

impl Eq for Found {}

impl PartialOrd for Found {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Found {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.point.cmp(&other.point))
    }
}

impl FlatGraph {
    /// Copies `hnsw`'s points and links. Its data ids must be `0..n`, as relink gives them.
    pub fn from_hnsw(hnsw: HnswGraph) -> FlatGraph {
        let mut points: Vec<_> = hnsw.get_point_indexation().into_iter().collect();
        points.par_sort_unstable_by_key(|p| p.get_origin_id());
        assert!(
            points
                .iter()
                .enumerate()
                .all(|(i, p)| p.get_origin_id() == i),
            "graph data ids are 0..n"
        );
        let n = points.len();
        let width = points.first().map_or(0, |p| p.get_v().len());
        let mut data = Vec::with_capacity(n * width);
        points
            .iter()
            .for_each(|p| data.extend_from_slice(p.get_v()));
        let mut offsets = Vec::with_capacity(n + 1);
        let mut links = Vec::new();
        let mut upper = HashMap::new();
        let (mut top, mut entry) = (0usize, 0u32);
        offsets.push(0u32);
        // Block by block, each block's links gathered in parallel: every point's links
        // gathered at once were a second copy of the graph held beside hnsw_rs's own.
        for (b, block) in points.chunks(LINK_BLOCK).enumerate() {
            // Each point's links, layer by layer, as data ids.
            let layers: Vec<Vec<Vec<u32>>> = block
                .par_iter()
                .map(|p| {
                    let level = p.get_point_id().0 as usize;
                    let mut layers = p.get_neighborhood_id();
                    layers.truncate(level + 1);
                    layers
                        .into_iter()
                        .map(|l| l.iter().map(|nb| nb.d_id as u32).collect())
                        .collect()
                })
                .collect();
            for (j, point_layers) in layers.into_iter().enumerate() {
                let p = b * LINK_BLOCK + j;
                let mut point_layers = point_layers.into_iter();
                links.extend(point_layers.next().unwrap_or_default());
                offsets.push(links.len() as u32);
                let rest: Vec<Vec<u32>> = point_layers.collect();
                // The entry point: the first point of the top layer.
                if rest.len() > top {
                    (top, entry) = (rest.len(), p as u32);
                }
                if !rest.is_empty() {
                    upper.insert(p as u32, rest);
                }
            }
        }
        drop(points);
        drop(hnsw);
        // hnsw_rs's structure is millions of small allocations: what they leave on the heap
        // would otherwise stay in the process until the end of the run.
        crate::alloc::release_freed_memory();
        FlatGraph {
            width,
            data,
            offsets,
            links,
            upper,
            entry,
            top,
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn vector(&self, p: u32) -> &[i8] {
        let start = p as usize * self.width;
        &self.data[start..start + self.width]
    }

    fn distance(&self, q: &[i8], p: u32) -> f32 {
        QuantizedCosine.eval(q, self.vector(p))
    }

    fn links_of(&self, p: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            &self.links[self.offsets[p as usize] as usize..self.offsets[p as usize + 1] as usize]
        } else {
            self.upper
                .get(&p)
                .and_then(|l| l.get(layer - 1))
                .map_or(&[], Vec::as_slice)
        }
    }

    /// The `ef` points nearest to the quantized query `q` that `live` accepts, nearest first.
    /// Points `live` refuses are still walked through, never returned.
    pub fn search(&self, q: &[i8], ef: usize, live: impl Fn(u32) -> bool) -> Vec<Found> {
        if self.is_empty() || ef == 0 {
            return Vec::new();
        }
        // Greedy descent: on each upper layer, move to a nearer neighbour while there is one.
        let mut at = self.entry;
        let mut d = self.distance(q, at);
        for layer in (1..=self.top).rev() {
            loop {
                let mut moved = false;
                for &nb in self.links_of(at, layer) {
                    let dn = self.distance(q, nb);
                    if dn < d {
                        (at, d) = (nb, dn);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        VISITED.with(|v| {
            let mut visited = v.borrow_mut();
            visited.start(self.len());
            let mut candidates = BinaryHeap::new();
            let mut results: BinaryHeap<Found> = BinaryHeap::with_capacity(ef + 1);
            let start = Found {
                point: at,
                distance: d,
            };
            visited.mark(at);
            candidates.push(Reverse(start));
            if live(at) {
                results.push(start);
            }
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && c.distance > results.peek().expect("full").distance {
                    break;
                }
                let links = self.links_of(c.point, 0);
                for &nb in links {
                    self.prefetch(nb);
                }
                for &nb in links {
                    if !visited.mark(nb) {
                        continue;
                    }
                    let found = Found {
                        point: nb,
                        distance: self.distance(q, nb),
                    };
                    if results.len() < ef || found.distance < results.peek().expect("full").distance
                    {
                        candidates.push(Reverse(found));
                        if live(nb) {
                            results.push(found);
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    /// Asks the CPU to start loading a point's vector: a layer-0 step compares the query with
    /// up to 32 points at once, each at a random place in memory.
    #[inline(always)]
    fn prefetch(&self, p: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = p as usize * self.width;
            if start < self.data.len() {
                // SAFETY: the address lies inside `data`; a prefetch reads nothing.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(self.data.as_ptr().add(start));
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
}

/// The points one search has visited, without clearing a set per search: a point is visited
/// when its stamp is the search's number.
struct Visited {
    stamps: Vec<u32>,
    now: u32,
}

impl Visited {
    fn start(&mut self, n: usize) {
        if self.stamps.len() < n {
            self.stamps.resize(n, 0);
        }
        self.now = self.now.wrapping_add(1);
        if self.now == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.now = 1;
        }
    }

    /// Marks `p`; false when it was already marked in this search.
    fn mark(&mut self, p: u32) -> bool {
        let s = &mut self.stamps[p as usize];
        if *s == self.now {
            return false;
        }
        *s = self.now;
        true
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const {
        RefCell::new(Visited {
            stamps: Vec::new(),
            now: 0,
        })
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{build_hnsw, dot, quantize, HnswParams};
    use crate::testing::random_unit_vectors;

    fn exact_order(v: &ndarray::Array2<f32>, q: usize, keep: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = (0..v.nrows())
            .filter(|&r| keep(r))
            .map(|r| {
                let c = dot(v.row(q).to_slice().unwrap(), v.row(r).to_slice().unwrap());
                (c, r as u32)
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn the_copy_holds_every_point_and_finds_the_nearest() {
        let v = random_unit_vectors(1500, 32, 5);
        let flat = FlatGraph::from_hnsw(build_hnsw(&v, HnswParams::default(), false));
        assert_eq!(flat.len(), 1500);
        for p in [0u32, 700, 1499] {
            assert_eq!(
                flat.vector(p),
                quantize(v.row(p as usize).to_slice().unwrap())
            );
        }
        let mut hits = 0;
        for q in (0..1500).step_by(15) {
            let found = flat.search(&quantize(v.row(q).to_slice().unwrap()), 40, |_| true);
            assert_eq!(found.len(), 40);
            assert!(found.windows(2).all(|w| w[0] <= w[1]), "nearest first");
            let got: Vec<u32> = found.iter().map(|f| f.point).collect();
            hits += exact_order(&v, q, |_| true)[..10]
                .iter()
                .filter(|p| got.contains(p))
                .count();
        }
        let recall = hits as f64 / (100 * 10) as f64;
        assert!(recall >= 0.97, "recall@10 within 40 found: {recall}");
        // A breadth beyond the graph returns every point once.
        let all = flat.search(&quantize(v.row(3).to_slice().unwrap()), 5000, |_| true);
        let mut points: Vec<u32> = all.iter().map(|f| f.point).collect();
        points.sort_unstable();
        assert_eq!(points, (0..1500).collect::<Vec<u32>>());
    }

    #[test]
    fn points_left_out_are_walked_through_never_returned() {
        let v = random_unit_vectors(1200, 24, 6);
        let flat = FlatGraph::from_hnsw(build_hnsw(&v, HnswParams::default(), false));
        let live = |p: u32| !p.is_multiple_of(3);
        let mut hits = 0;
        for q in (0..1200).step_by(12) {
            let found = flat.search(&quantize(v.row(q).to_slice().unwrap()), 30, live);
            assert_eq!(found.len(), 30);
            assert!(found.iter().all(|f| live(f.point)));
            let got: Vec<u32> = found.iter().map(|f| f.point).collect();
            hits += exact_order(&v, q, |r| live(r as u32))[..10]
                .iter()
                .filter(|p| got.contains(p))
                .count();
        }
        let recall = hits as f64 / (100 * 10) as f64;
        assert!(recall >= 0.95, "recall@10 among live points: {recall}");
        // Nothing live: nothing found, however wide the search.
        assert!(flat
            .search(&quantize(v.row(0).to_slice().unwrap()), 50, |_| false)
            .is_empty());
    }

    #[test]
    fn searches_on_many_threads_agree_with_one() {
        let v = random_unit_vectors(800, 16, 7);
        let flat = FlatGraph::from_hnsw(build_hnsw(&v, HnswParams::default(), false));
        let q: Vec<Vec<i8>> = (0..800)
            .map(|r| quantize(v.row(r).to_slice().unwrap()))
            .collect();
        let one: Vec<Vec<Found>> = q.iter().map(|q| flat.search(q, 20, |_| true)).collect();
        let many: Vec<Vec<Found>> = q.par_iter().map(|q| flat.search(q, 20, |_| true)).collect();
        assert_eq!(one, many);
    }
}
