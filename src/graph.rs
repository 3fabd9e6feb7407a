//! The HNSW graph as searched, extended and kept: flat arrays, in relink's own file format.
//!
//! hnsw_rs builds a new graph on every core; its own search walks points held behind
//! reference-counted pointers and locks, with a hashed set of the points visited, and that
//! bookkeeping, not the distances, was most of a search's time (31% of a cold 30,000-article
//! refresh in its layer search against 18% in the distances it computes). Once a graph is
//! built, relink copies it into flat arrays (every point's quantized vector in one block, every
//! point's layer-0 links in fixed slots of another, the few upper-layer links by point), drops
//! hnsw_rs's structure and searches the copy the standard HNSW way: a greedy descent from the
//! entry point through the upper layers, then a best-first search of layer 0 keeping the `ef`
//! nearest points found. The copy holds 4 bytes a link and 388 bytes a 384-d point.
//!
//! The copy is also what relink keeps and extends: [`FlatGraph::write`] and
//! [`FlatGraph::read`] save and load it as these arrays, and [`FlatGraph::insert`] adds a point
//! the way hnsw_rs inserts one (the same layer distribution, search breadth, neighbour
//! heuristic and reverse links). Loading hnsw_rs's own dump meant rebuilding its millions of
//! small allocations and copying them again into the flat arrays: at a million articles that
//! was most of a delta's 49 s graph stage and its peak memory.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};

use hnsw_rs::prelude::Distance;
use rayon::prelude::*;

use crate::index::{HnswGraph, QuantizedCosine};

/// Points whose links [`FlatGraph::from_hnsw`] gathers at a time.
const LINK_BLOCK: usize = 65_536;

/// Layers a point can reach (hnsw_rs's 16: levels 0 to 15).
pub const MAX_LAYERS: usize = 16;

/// A searchable copy of an HNSW graph. Point `p` is hnsw_rs's data id `p`.
#[derive(Debug, PartialEq)]
pub struct FlatGraph {
    /// Length of one point's quantized vector.
    width: usize,
    /// Links a point keeps on layers 1 and up (hnsw_rs's max_nb_connection); twice as many on
    /// layer 0.
    m: usize,
    /// Every point's quantized vector, point after point.
    data: Vec<i8>,
    /// Layer-0 links of point `p`: the first `counts[p]` of `links[p * 2m..(p + 1) * 2m]`.
    counts: Vec<u8>,
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
    /// An empty graph whose points will keep `m` links a layer (`2m` on layer 0).
    pub fn new(m: usize) -> FlatGraph {
        FlatGraph {
            width: 0,
            m,
            data: Vec::new(),
            counts: Vec::new(),
            links: Vec::new(),
            upper: HashMap::new(),
            entry: 0,
            top: 0,
        }
    }

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
        let mut flat = FlatGraph::new(hnsw.get_max_nb_connection() as usize);
        let slots = flat.slots();
        flat.width = points.first().map_or(0, |p| p.get_v().len());
        flat.data.reserve_exact(n * flat.width);
        points
            .iter()
            .for_each(|p| flat.data.extend_from_slice(p.get_v()));
        flat.counts.reserve_exact(n);
        flat.links.reserve_exact(n * slots);
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
                let mut zero = point_layers.next().unwrap_or_default();
                zero.truncate(slots);
                flat.counts.push(zero.len() as u8);
                flat.links.extend_from_slice(&zero);
                flat.links.resize(flat.links.len() + slots - zero.len(), 0);
                let mut rest: Vec<Vec<u32>> = point_layers.collect();
                rest.iter_mut().for_each(|l| l.truncate(flat.m));
                // The entry point: the first point of the top layer.
                if rest.len() > flat.top {
                    (flat.top, flat.entry) = (rest.len(), p as u32);
                }
                if !rest.is_empty() {
                    flat.upper.insert(p as u32, rest);
                }
            }
        }
        drop(points);
        drop(hnsw);
        // hnsw_rs's structure is millions of small allocations: what they leave on the heap
        // would otherwise stay in the process until the end of the run.
        crate::alloc::release_freed_memory();
        flat
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Link slots of a point on layer 0.
    fn slots(&self) -> usize {
        2 * self.m
    }

    /// Links a point keeps on `layer`.
    fn capacity(&self, layer: usize) -> usize {
        if layer == 0 {
            self.slots()
        } else {
            self.m
        }
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
            let start = p as usize * self.slots();
            &self.links[start..start + self.counts[p as usize] as usize]
        } else {
            self.upper
                .get(&p)
                .and_then(|l| l.get(layer - 1))
                .map_or(&[], Vec::as_slice)
        }
    }

    fn set_links(&mut self, p: u32, layer: usize, to: &[u32]) {
        if layer == 0 {
            let start = p as usize * self.slots();
            self.links[start..start + to.len()].copy_from_slice(to);
            self.counts[p as usize] = to.len() as u8;
        } else if let Some(l) = self.upper.get_mut(&p).and_then(|l| l.get_mut(layer - 1)) {
            l.clear();
            l.extend_from_slice(to);
        }
    }

    /// The `ef` points nearest to the quantized query `q` that `live` accepts, nearest first.
    /// Points `live` refuses are still walked through, never returned.
    pub fn search(&self, q: &[i8], ef: usize, live: impl Fn(u32) -> bool) -> Vec<Found> {
        if self.is_empty() || ef == 0 {
            return Vec::new();
        }
        let mut at = self.start(q);
        for layer in (1..=self.top).rev() {
            at = self.descend(q, at, layer);
        }
        self.best_first(q, at, ef, 0, live)
    }

    fn start(&self, q: &[i8]) -> Found {
        Found {
            point: self.entry,
            distance: self.distance(q, self.entry),
        }
    }

    /// Greedy descent on one upper layer: moves to a nearer neighbour while there is one.
    fn descend(&self, q: &[i8], mut at: Found, layer: usize) -> Found {
        loop {
            let mut moved = false;
            for &nb in self.links_of(at.point, layer) {
                let dn = self.distance(q, nb);
                if dn < at.distance {
                    at = Found {
                        point: nb,
                        distance: dn,
                    };
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// Best-first search of one layer from `start`, keeping the `ef` nearest points `live`
    /// accepts; nearest first.
    fn best_first(
        &self,
        q: &[i8],
        start: Found,
        ef: usize,
        layer: usize,
        live: impl Fn(u32) -> bool,
    ) -> Vec<Found> {
        VISITED.with(|v| {
            let mut visited = v.borrow_mut();
            visited.start(self.len());
            let mut candidates = BinaryHeap::new();
            let mut results: BinaryHeap<Found> = BinaryHeap::with_capacity(ef + 1);
            visited.mark(start.point);
            candidates.push(Reverse(start));
            if live(start.point) {
                results.push(start);
            }
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && c.distance > results.peek().expect("full").distance {
                    break;
                }
                // The points not yet visited, marked and their vectors requested first, then
                // compared in the same order.
                for links in self.links_of(c.point, layer).chunks(64) {
                    let mut fresh = [0u32; 64];
                    let mut count = 0;
                    for &nb in links {
                        if visited.mark(nb) {
                            self.prefetch(nb);
                            fresh[count] = nb;
                            count += 1;
                        }
                    }
                    for &nb in &fresh[..count] {
                        let found = Found {
                            point: nb,
                            distance: self.distance(q, nb),
                        };
                        if results.len() < ef
                            || found.distance < results.peek().expect("full").distance
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
            }
            results.into_sorted_vec()
        })
    }

    /// Adds the quantized vector `v` as point `len()`, reaching up to `level` (see
    /// [`level_of`]), linked as hnsw_rs links a point it inserts: a greedy descent to the
    /// point's top layer, then on each layer down to 0 a search keeping the `ef_construction`
    /// nearest, of which the neighbour heuristic keeps up to the layer's capacity (a candidate
    /// nearer to a neighbour already kept than to the point is passed over); each neighbour
    /// links back, dropping its farthest link when full. Every point is walked through, masked
    /// ones included, as in hnsw_rs.
    pub fn insert(&mut self, v: &[i8], level: usize, ef_construction: usize) -> u32 {
        if self.is_empty() {
            self.width = v.len();
        }
        assert_eq!(v.len(), self.width, "a point of the graph's width");
        let level = level.min(MAX_LAYERS - 1);
        let p = self.len() as u32;
        self.data.extend_from_slice(v);
        self.counts.push(0);
        self.links.resize(self.links.len() + self.slots(), 0);
        if level > 0 {
            self.upper.insert(p, vec![Vec::new(); level]);
        }
        if p == 0 {
            (self.entry, self.top) = (p, level);
            return p;
        }
        let mut at = self.start(v);
        for layer in (level + 1..=self.top).rev() {
            at = self.descend(v, at, layer);
        }
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.best_first(v, at, ef_construction.max(1), layer, |_| true);
            at = found[0];
            let chosen = self.choose_neighbours(&found, self.capacity(layer));
            let ids: Vec<u32> = chosen.iter().map(|f| f.point).collect();
            self.set_links(p, layer, &ids);
            for c in chosen {
                self.link_back(c, p, layer);
            }
        }
        if level > self.top {
            (self.entry, self.top) = (p, level);
        }
        p
    }

    /// hnsw_rs's neighbour heuristic (Malkov and Yashunin's, without the pruned ones kept):
    /// from the candidates, nearest first, a candidate is kept unless it is at least as near
    /// to a neighbour already kept as to the point; all of them when they fit.
    fn choose_neighbours(&self, found: &[Found], capacity: usize) -> Vec<Found> {
        if found.len() <= capacity {
            return found.to_vec();
        }
        let mut kept: Vec<Found> = Vec::with_capacity(capacity);
        for &e in found {
            if kept.len() == capacity {
                break;
            }
            let v = self.vector(e.point);
            if kept.iter().all(|k| self.distance(v, k.point) > e.distance) {
                kept.push(e);
            }
        }
        kept
    }

    /// Adds `p` (at `to.distance` from `to.point`) to `to.point`'s links on `layer`; when they
    /// are full, the farthest of them and `p` is left out, as hnsw_rs does.
    fn link_back(&mut self, to: Found, p: u32, layer: usize) {
        let q = to.point;
        let mut links = self.links_of(q, layer).to_vec();
        if links.contains(&p) {
            return;
        }
        if links.len() < self.capacity(layer) {
            links.push(p);
        } else {
            let v = self.vector(q);
            let mut by_distance: Vec<Found> = links
                .iter()
                .map(|&nb| Found {
                    point: nb,
                    distance: self.distance(v, nb),
                })
                .collect();
            by_distance.push(Found {
                point: p,
                distance: to.distance,
            });
            by_distance.sort_unstable();
            by_distance.pop();
            links = by_distance.into_iter().map(|f| f.point).collect();
        }
        self.set_links(q, layer, &links);
    }

    /// Bytes a point's quantized vector takes.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Writes the graph as [`read`](Self::read) takes it back; returns the bytes written and
    /// their xxh3, for the caller to record. The format, little-endian: [`MAGIC`]; width, m,
    /// top layer and entry point (4 bytes each) and the number of points (8); every point's
    /// vector; every point's layer-0 link count (1 byte); every point's `2m` layer-0 slots (4
    /// bytes each, unused ones 0); the number of points with upper layers (8), then for each,
    /// in point order, the point (4), its layers (1) and each layer's link count (1) and links.
    pub fn write(&self, w: &mut dyn Write) -> io::Result<(u64, u64)> {
        let mut w = Hashing::new(w);
        w.write_all(MAGIC)?;
        for x in [self.width, self.m, self.top, self.entry as usize] {
            w.write_all(&(x as u32).to_le_bytes())?;
        }
        w.write_all(&(self.len() as u64).to_le_bytes())?;
        for block in self.data.chunks(1 << 16) {
            let bytes: Vec<u8> = block.iter().map(|&x| x as u8).collect();
            w.write_all(&bytes)?;
        }
        w.write_all(&self.counts)?;
        for block in self.links.chunks(1 << 14) {
            let bytes: Vec<u8> = block.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        let mut upper: Vec<(&u32, &Vec<Vec<u32>>)> = self.upper.iter().collect();
        upper.sort_unstable_by_key(|(p, _)| **p);
        w.write_all(&(upper.len() as u64).to_le_bytes())?;
        for (p, layers) in upper {
            w.write_all(&p.to_le_bytes())?;
            w.write_all(&[layers.len() as u8])?;
            for l in layers {
                w.write_all(&[l.len() as u8])?;
                for nb in l {
                    w.write_all(&nb.to_le_bytes())?;
                }
            }
        }
        Ok((w.len, w.hash.digest()))
    }

    /// Reads a graph [`write`](Self::write) wrote, from a file of `size` bytes; returns it
    /// with the xxh3 of the bytes read. Every count is checked against the file's size before
    /// anything is allocated and every link against the number of points, so a damaged file is
    /// an error, never a huge allocation or a link out of bounds; the caller compares the xxh3
    /// with the one recorded when the file was written.
    pub fn read(r: impl Read, size: u64) -> io::Result<(FlatGraph, u64)> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("graph: {what}"));
        let mut r = Hashing::new(r);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not a relink graph"));
        }
        let [width, m, top, entry] = [(); 4].map(|_| read_u32(&mut r).map(|x| x as usize));
        let (width, m, top, entry) = (width?, m?, top?, entry?);
        let n = read_u64(&mut r)?;
        let per_point = (width as u64)
            .checked_add(1 + 8 * m as u64)
            .ok_or_else(|| bad("sizes"))?;
        if m == 0
            || 2 * m > u8::MAX as usize
            || top >= MAX_LAYERS
            || n > u32::MAX as u64
            || n.checked_mul(per_point).is_none_or(|b| b > size)
            || (n == 0 && (entry != 0 || top != 0))
            || (n > 0 && entry as u64 >= n)
        {
            return Err(bad("sizes"));
        }
        let n = n as usize;
        let mut flat = FlatGraph::new(m);
        let slots = flat.slots();
        flat.width = width;
        (flat.top, flat.entry) = (top, entry as u32);
        flat.data = read_bytes(&mut r, n * width)?
            .into_iter()
            .map(|b| b as i8)
            .collect();
        flat.counts = read_bytes(&mut r, n)?;
        flat.links = read_u32s(&mut r, n * slots)?;
        let in_range = |l: &[u32]| l.iter().all(|&x| (x as usize) < n);
        for p in 0..n as u32 {
            if flat.counts[p as usize] as usize > slots || !in_range(flat.links_of(p, 0)) {
                return Err(bad("links"));
            }
        }
        let with_upper = read_u64(&mut r)?;
        if with_upper > n as u64 {
            return Err(bad("upper layers"));
        }
        for _ in 0..with_upper {
            let p = read_u32(&mut r)?;
            let layers = read_bytes(&mut r, 1)?[0] as usize;
            if p as usize >= n || layers == 0 || layers > top || flat.upper.contains_key(&p) {
                return Err(bad("upper layers"));
            }
            let mut point_layers = Vec::with_capacity(layers);
            for _ in 0..layers {
                let len = read_bytes(&mut r, 1)?[0] as usize;
                if len > m {
                    return Err(bad("upper layers"));
                }
                let l = read_u32s(&mut r, len)?;
                if !in_range(&l) {
                    return Err(bad("upper layers"));
                }
                point_layers.push(l);
            }
            flat.upper.insert(p, point_layers);
        }
        if top > 0 && flat.upper.get(&flat.entry).map(Vec::len) != Some(top) {
            return Err(bad("entry point"));
        }
        if r.read(&mut [0u8])? != 0 {
            return Err(bad("bytes after the end"));
        }
        let hash = r.hash.digest();
        Ok((flat, hash))
    }

    /// Asks the CPU to start loading a point's vector: a layer-0 step compares the query with
    /// up to 32 points at once, each at a random place in memory.
    #[inline(always)]
    fn prefetch(&self, p: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = p as usize * self.width;
            let end = (start + self.width).min(self.data.len());
            for at in (start..end).step_by(64) {
                // SAFETY: the address lies inside `data`; a prefetch reads nothing.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(self.data.as_ptr().add(at));
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
}

/// The first bytes of a graph file.
const MAGIC: &[u8; 8] = b"RLNKGRF1";

/// The layer a new point reaches, drawn as hnsw_rs draws it (`floor(-ln(u) / ln(m))`, at most
/// [`MAX_LAYERS`] - 1) from a uniform `u` derived from `seed` (the point's text key), so that
/// the same text gets the same layer on every run, whatever else is inserted.
pub fn level_of(seed: u128, m: usize) -> usize {
    let mut state = (seed as u64) ^ ((seed >> 64) as u64);
    let bits = crate::index::splitmix64(&mut state) >> 11;
    // In (0, 1]: never 0, whose logarithm is infinite.
    let u = (bits + 1) as f64 / (1u64 << 53) as f64;
    let level = -u.ln() / (m.max(2) as f64).ln();
    (level as usize).min(MAX_LAYERS - 1)
}

/// A reader or writer that hashes (xxh3) and counts the bytes through it.
struct Hashing<T> {
    inner: T,
    hash: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hash: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn read_bytes(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `n` little-endian `u32`s, read a block at a time (`n` is checked against the file's size
/// before this is called).
fn read_u32s(r: &mut impl Read, n: usize) -> io::Result<Vec<u32>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let bytes = read_bytes(r, 4 * (n - out.len()).min(1 << 14))?;
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
        );
    }
    Ok(out)
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
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

    fn recall_within(flat: &FlatGraph, v: &ndarray::Array2<f32>, ef: usize) -> f64 {
        let mut hits = 0;
        let queries: Vec<usize> = (0..v.nrows()).step_by(v.nrows() / 100).take(100).collect();
        for &q in &queries {
            let found = flat.search(&quantize(v.row(q).to_slice().unwrap()), ef, |_| true);
            let got: Vec<u32> = found.iter().map(|f| f.point).collect();
            hits += exact_order(v, q, |_| true)[..10]
                .iter()
                .filter(|p| got.contains(p))
                .count();
        }
        hits as f64 / (queries.len() * 10) as f64
    }

    fn insert_rows(flat: &mut FlatGraph, v: &ndarray::Array2<f32>, rows: std::ops::Range<usize>) {
        for r in rows {
            let p = flat.insert(
                &quantize(v.row(r).to_slice().unwrap()),
                level_of(r as u128 * 7919, 16),
                HnswParams::default().ef_construction,
            );
            assert_eq!(p as usize, r);
        }
    }

    #[test]
    fn points_inserted_into_the_copy_are_found_as_in_a_built_graph() {
        let v = random_unit_vectors(2000, 32, 8);
        let first = v.slice(ndarray::s![..1000, ..]).to_owned();
        // Half built by hnsw_rs, half inserted; and all inserted into an empty graph.
        let mut extended = FlatGraph::from_hnsw(build_hnsw(&first, HnswParams::default(), false));
        insert_rows(&mut extended, &v, 1000..2000);
        let mut inserted = FlatGraph::new(16);
        insert_rows(&mut inserted, &v, 0..2000);
        for flat in [&extended, &inserted] {
            assert_eq!(flat.len(), 2000);
            assert_eq!(flat.vector(1500), quantize(v.row(1500).to_slice().unwrap()));
            let recall = recall_within(flat, &v, 40);
            assert!(recall >= 0.97, "recall@10 within 40 found: {recall}");
            // Every link within capacity and to another point.
            for p in 0..2000u32 {
                for layer in 0..=flat.top {
                    let l = flat.links_of(p, layer);
                    assert!(l.len() <= flat.capacity(layer) && !l.contains(&p));
                }
            }
        }
        // Inserting is deterministic: the same points in the same order, the same graph.
        let mut again = FlatGraph::new(16);
        insert_rows(&mut again, &v, 0..2000);
        assert!(again == inserted);
    }

    #[test]
    fn levels_follow_hnsw_rs_distribution_and_their_seed() {
        let levels: Vec<usize> = (0..200_000u128)
            .map(|s| level_of(s << 70 | s, 16))
            .collect();
        let above = |l: usize| levels.iter().filter(|&&x| x >= l).count() as f64 / 200_000.0;
        // P(level >= l) = 16^-l.
        assert!((above(1) - 1.0 / 16.0).abs() < 0.003, "{}", above(1));
        assert!((above(2) - 1.0 / 256.0).abs() < 0.001, "{}", above(2));
        assert_eq!(level_of(42, 16), level_of(42, 16));
        assert!(levels.iter().all(|&l| l < MAX_LAYERS));
    }

    #[test]
    fn the_copy_is_written_and_read_back_whole_and_damage_is_seen() {
        let v = random_unit_vectors(700, 24, 9);
        let flat = FlatGraph::from_hnsw(build_hnsw(&v, HnswParams::default(), false));
        assert!(flat.top > 0, "a graph with upper layers");
        let mut bytes = Vec::new();
        let (len, hash) = flat.write(&mut bytes).unwrap();
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(hash, xxhash_rust::xxh3::xxh3_64(&bytes));
        let (back, read_hash) = FlatGraph::read(&bytes[..], len).unwrap();
        assert_eq!(read_hash, hash);
        assert!(back == flat);
        // Written again, the same bytes.
        let mut twice = Vec::new();
        back.write(&mut twice).unwrap();
        assert_eq!(twice, bytes);
        let read = |b: &[u8]| FlatGraph::read(b, b.len() as u64);
        // Cut short, or with bytes after the end: an error.
        for cut in [0, 7, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&longer).is_err());
        // Counts made huge: refused before anything is allocated.
        let mut huge = bytes.clone();
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read(&huge).is_err());
        // Any byte changed: an error, or a graph whose hash is not the one recorded.
        for at in (0..bytes.len()).step_by(97) {
            let mut changed = bytes.clone();
            changed[at] ^= 0x5a;
            if let Ok((_, h)) = read(&changed) {
                assert_ne!(h, hash, "byte {at}");
            }
        }
        // An empty graph too.
        let mut empty = Vec::new();
        FlatGraph::new(16).write(&mut empty).unwrap();
        assert!(read(&empty).unwrap().0 == FlatGraph::new(16));
    }
}
