//! Upper bounds of many cosines at once, from 8-bit copies of the vectors.
//!
//! After a delta, relink asks of every kept article which of the articles that moved (entered or
//! left) come near enough to it to reach its list: at a million articles and 3,100 moved, 3.1
//! billion cosines, of which few pass. An `f32` matrix product computed them all (the whole
//! plan, its lexical part included, took 41.5 s at a million on 2 cores; 17.9 s now). Here
//! each vector is scaled to 8-bit integers (as the graph's copies are) and the products are
//! integers, with a bound on what the rounding can hide: for unit vectors `a = â + e_a` and
//! `b = b̂ + e_b`, `a·b ≤ â·b̂ + |â||e_b| + |e_a||b̂| + |e_a||e_b|`, every term known exactly
//! enough (the integer product is exact; the norms are a vector's own). A pair whose bound
//! reaches an edge is then compared exactly; no pair above it is ever missed. With AVX-512
//! VNNI, 64 products of bytes are one instruction.

use crate::index::{dot_i8, has_vnni};

/// Coordinates are padded to a multiple of this (zeros add nothing to a product).
const LANES: usize = 64;

/// What the `f32` arithmetic of a bound can get wrong, added to every bound: far above the
/// few units in the last place of numbers near 1, far below any margin a ranking uses.
const ARITHMETIC_SLACK: f32 = 1e-5;

/// 8-bit copies of a set of vectors, with what their bounds need.
pub struct Coarse {
    /// Padded length of a vector.
    width: usize,
    /// Vector after vector, each coordinate `round(x / scale)`.
    q: Vec<i8>,
    scale: Vec<f32>,
    /// Sum of each vector's 8-bit coordinates.
    sum: Vec<i32>,
    /// `|v̂|` and `|v - v̂|` of each vector, `v̂ = scale * q`.
    norm: Vec<f32>,
    error: Vec<f32>,
}

impl Coarse {
    /// The 8-bit copies of `rows` (all of one length).
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a [f32]>) -> Coarse {
        let mut c = Coarse {
            width: 0,
            q: Vec::new(),
            scale: Vec::new(),
            sum: Vec::new(),
            norm: Vec::new(),
            error: Vec::new(),
        };
        for v in rows {
            if c.scale.is_empty() {
                c.width = v.len().div_ceil(LANES) * LANES;
            }
            let start = c.q.len();
            c.q.resize(start + c.width, 0);
            let (scale, sum, norm, error) = quantize(v, &mut c.q[start..start + v.len()]);
            c.scale.push(scale);
            c.sum.push(sum);
            c.norm.push(norm);
            c.error.push(error);
        }
        c
    }

    pub fn len(&self) -> usize {
        self.scale.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }

    fn row(&self, i: usize) -> &[i8] {
        &self.q[i * self.width..(i + 1) * self.width]
    }

    /// For every vector `i` here, the vectors `j` of `columns` whose exact cosine with it can
    /// reach `edge(i)`: every `j` whose cosine through [`crate::index::dot`] is at least
    /// `edge(i)` + [`crate::index::product_rounding`], and few others (the bound is a few
    /// hundredths above the cosine).
    pub fn reaching(&self, columns: &Columns, edge: impl Fn(usize) -> f32) -> Vec<Vec<u32>> {
        self.reaching_with(columns, edge, has_vnni())
    }

    /// [`reaching`](Self::reaching), the products by AVX-512 VNNI or by [`dot_i8`]; the bounds
    /// are the same numbers either way (the same operations in the same order).
    fn reaching_with(
        &self,
        columns: &Columns,
        edge: impl Fn(usize) -> f32,
        vnni: bool,
    ) -> Vec<Vec<u32>> {
        let c = columns;
        let mut out = vec![Vec::new(); self.len()];
        if self.is_empty() || c.is_empty() {
            return out;
        }
        assert_eq!(self.width, c.coarse.width, "vectors of one length");
        // Which of a block's sixteen columns reach the edge, a bit each, four rows at a time.
        let mut masks = vec![0u16; 4 * c.blocks];
        let mut shifted = vec![0x80u8; 4 * self.width];
        for first in (0..self.len()).step_by(4) {
            let rows = first..(first + 4).min(self.len());
            let mut terms = [RowTerms::default(); 4];
            for (t, i) in terms.iter_mut().zip(rows.clone()) {
                *t = RowTerms {
                    scale: self.scale[i],
                    norm: self.norm[i],
                    error: self.error[i],
                    at_least: edge(i) - ARITHMETIC_SLACK,
                };
            }
            if vnni {
                // VNNI multiplies unsigned bytes by signed ones: the rows' coordinates are
                // shifted by 128 (x ^ 0x80 = x + 128 as a byte), which adds 128 * sum(column)
                // to each product, taken off again. A padding row is all zeros.
                shifted.fill(0x80);
                let end = (first + 4).min(self.len()) * self.width;
                for (s, &q) in shifted.iter_mut().zip(&self.q[first * self.width..end]) {
                    *s = (q as u8) ^ 0x80;
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has the features (`has_vnni`); lengths are checked inside.
                unsafe {
                    reaching_vnni(&shifted, &terms, c, &mut masks)
                };
            } else {
                for (r, i) in rows.clone().enumerate() {
                    for b in 0..c.blocks {
                        let mut mask = 0u16;
                        for k in 0..BLOCK_COLUMNS {
                            let j = b * BLOCK_COLUMNS + k;
                            if j < c.len() {
                                let p = dot_i8(self.row(i), c.coarse.row(j));
                                mask |= (terms[r].reach(&c.coarse, j, p) as u16) << k;
                            }
                        }
                        masks[r * c.blocks + b] = mask;
                    }
                }
            }
            for (r, i) in rows.enumerate() {
                for (b, &mask) in masks[r * c.blocks..(r + 1) * c.blocks].iter().enumerate() {
                    let mut mask = mask & c.valid(b);
                    while mask != 0 {
                        out[i].push((b * BLOCK_COLUMNS) as u32 + mask.trailing_zeros());
                        mask &= mask - 1;
                    }
                }
            }
        }
        out
    }
}

/// What the bound of a row's pairs takes from the row.
#[derive(Clone, Copy, Default)]
struct RowTerms {
    scale: f32,
    norm: f32,
    error: f32,
    /// The edge, less [`ARITHMETIC_SLACK`].
    at_least: f32,
}

impl RowTerms {
    /// Whether the bound of this row and column `j`, whose integer product is `p`, reaches
    /// the edge: `p * scales + |â||e_b| + |e_a|(|b̂| + |e_b|)`, in the order `reaching_vnni`
    /// computes it.
    fn reach(&self, c: &Coarse, j: usize, p: i32) -> bool {
        let bound = p as f32 * c.scale[j] * self.scale
            + (self.norm * c.error[j] + self.error * (c.norm[j] + c.error[j]));
        bound >= self.at_least
    }
}

/// Columns packed for [`Coarse::reaching`]: sixteen vectors at a time, four bytes of each in
/// turn, so that one 64-byte load holds the same four coordinates of sixteen vectors.
pub struct Columns {
    /// The vectors, padded with zero vectors (scale, norm and error 0) to whole blocks.
    coarse: Coarse,
    /// Vectors before the padding.
    len: usize,
    blocks: usize,
    packed: Vec<i8>,
}

/// Vectors a block of [`Columns`] interleaves: one 64-byte register of 32-bit sums.
const BLOCK_COLUMNS: usize = 16;

impl Columns {
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a [f32]>) -> Columns {
        let mut coarse = Coarse::of(rows);
        let len = coarse.len();
        let blocks = len.div_ceil(BLOCK_COLUMNS);
        let padded = blocks * BLOCK_COLUMNS;
        coarse.q.resize(padded * coarse.width, 0);
        coarse.sum.resize(padded, 0);
        for v in [&mut coarse.scale, &mut coarse.norm, &mut coarse.error] {
            v.resize(padded, 0.0);
        }
        let mut packed = vec![0i8; padded * coarse.width];
        for j in 0..len {
            let (b, lane) = (j / BLOCK_COLUMNS, j % BLOCK_COLUMNS);
            for (k, four) in coarse.row(j).chunks_exact(4).enumerate() {
                let at = ((b * coarse.width / 4 + k) * BLOCK_COLUMNS + lane) * 4;
                packed[at..at + 4].copy_from_slice(four);
            }
        }
        Columns {
            coarse,
            len,
            blocks,
            packed,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bits of block `b` that stand for columns (the last block's padding is left out).
    fn valid(&self, b: usize) -> u16 {
        let lanes = (self.len - b * BLOCK_COLUMNS).min(BLOCK_COLUMNS);
        (((1u32 << lanes) - 1) & 0xffff) as u16
    }
}

/// Quantizes `v` into `q` (each coordinate over the largest's 127th, rounded); returns the
/// scale, the sum of `q`, `|v̂|` and `|v - v̂|`.
fn quantize(v: &[f32], q: &mut [i8]) -> (f32, i32, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { quantize_avx2(v, q) };
        }
    }
    quantize_portable(v, q)
}

/// The portable loop compiled for AVX2: rounding a vector of floats is one instruction there.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(v: &[f32], q: &mut [i8]) -> (f32, i32, f32, f32) {
    quantize_portable(v, q)
}

/// Eight independent sums of each kind, which the compiler turns into SIMD.
#[inline(always)]
fn quantize_portable(v: &[f32], q: &mut [i8]) -> (f32, i32, f32, f32) {
    let mut largest = [0f32; 8];
    for xs in v.chunks(8) {
        for (m, x) in largest.iter_mut().zip(xs) {
            *m = m.max(x.abs());
        }
    }
    let largest = largest.iter().fold(0f32, |m, &x| m.max(x));
    let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    let inv = 1.0 / scale;
    let (mut sum, mut norm, mut error) = ([0i32; 8], [0f32; 8], [0f32; 8]);
    for (xs, qs) in v.chunks(8).zip(q.chunks_mut(8)) {
        for (i, (&x, q)) in xs.iter().zip(qs).enumerate() {
            let y = (x * inv).round().clamp(-127.0, 127.0);
            *q = y as i8;
            sum[i] += y as i32;
            let back = y * scale;
            norm[i] += back * back;
            error[i] += (x - back) * (x - back);
        }
    }
    (
        scale,
        sum.iter().sum(),
        norm.iter().sum::<f32>().sqrt(),
        error.iter().sum::<f32>().sqrt(),
    )
}

/// Four shifted rows (`rows`: four vectors of `width` unsigned bytes) against every block of
/// `columns`, each row's bounds compared with its edge: `masks[r * blocks + b]`, a bit a column.
/// For each four coordinates, one load of sixteen columns' bytes and four `vpdpbusd`, one a
/// row, each adding into sixteen sums: no sum is folded across a register, and the bounds are
/// computed and compared sixteen at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn reaching_vnni(rows: &[u8], terms: &[RowTerms; 4], columns: &Columns, masks: &mut [u16]) {
    use std::arch::x86_64::*;
    let c = &columns.coarse;
    let width = c.width;
    let padded = columns.blocks * BLOCK_COLUMNS;
    assert!(rows.len() == 4 * width && width.is_multiple_of(4));
    assert!(columns.packed.len() == padded * width && masks.len() == 4 * columns.blocks);
    assert!([c.scale.len(), c.norm.len(), c.error.len(), c.sum.len()]
        .iter()
        .all(|&l| l == padded));
    let pr = rows.as_ptr();
    for b in 0..columns.blocks {
        let pc = columns.packed.as_ptr().add(b * BLOCK_COLUMNS * width);
        let mut acc = [_mm512_setzero_si512(); 4];
        for k in 0..width / 4 {
            let vc = _mm512_loadu_si512(pc.add(k * 64) as *const __m512i);
            for (r, acc) in acc.iter_mut().enumerate() {
                let four = (pr.add(r * width + 4 * k) as *const i32).read_unaligned();
                *acc = _mm512_dpbusd_epi32(*acc, _mm512_set1_epi32(four), vc);
            }
        }
        let at = b * BLOCK_COLUMNS;
        // 128 x each column's byte sum: what the shifted rows added to its products.
        let sum = _mm512_loadu_si512(c.sum.as_ptr().add(at) as *const __m512i);
        let shift = _mm512_slli_epi32::<7>(sum);
        let scale = _mm512_loadu_ps(c.scale.as_ptr().add(at));
        let error = _mm512_loadu_ps(c.error.as_ptr().add(at));
        let norm_and_error = _mm512_add_ps(_mm512_loadu_ps(c.norm.as_ptr().add(at)), error);
        for (r, acc) in acc.iter().enumerate() {
            let t = &terms[r];
            let p = _mm512_cvtepi32_ps(_mm512_sub_epi32(*acc, shift));
            let product = _mm512_mul_ps(_mm512_mul_ps(p, scale), _mm512_set1_ps(t.scale));
            let slack = _mm512_add_ps(
                _mm512_mul_ps(_mm512_set1_ps(t.norm), error),
                _mm512_mul_ps(_mm512_set1_ps(t.error), norm_and_error),
            );
            let bound = _mm512_add_ps(product, slack);
            masks[r * columns.blocks + b] =
                _mm512_cmp_ps_mask::<_CMP_GE_OQ>(bound, _mm512_set1_ps(t.at_least));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{dot, product_rounding};
    use crate::testing::random_unit_vectors;

    fn rows(v: &ndarray::Array2<f32>) -> Vec<&[f32]> {
        v.rows()
            .into_iter()
            .map(|r| r.to_slice().unwrap())
            .collect()
    }

    #[test]
    fn no_pair_reaching_its_edge_is_left_out_and_few_others_come_in() {
        let mut a = random_unit_vectors(203, 384, 11);
        let b = random_unit_vectors(157, 384, 12);
        // Vectors the 8-bit scale treats worst: one large coordinate, the rest small.
        for r in 0..10 {
            let mut row = a.row_mut(r);
            row.fill(0.01);
            row[r] = 1.0;
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        // A vector and itself, and its negation.
        a.row_mut(20).assign(&b.row(3));
        a.row_mut(21).assign(&(-&b.row(4)));
        let (ra, rb) = (rows(&a), rows(&b));
        let (ca, cb) = (
            Coarse::of(ra.iter().copied()),
            Columns::of(rb.iter().copied()),
        );
        let rounding = product_rounding(384);
        let cos = |i: usize, j: usize| dot(ra[i], rb[j]);
        // Edges at the cosine of one pair of each row (pairs exactly on it), and above and
        // below everything.
        let edges: Vec<Box<dyn Fn(usize) -> f32>> = vec![
            Box::new(|i| cos(i, i % 157) - rounding),
            Box::new(|i| cos(i, (7 * i) % 157) - rounding),
            Box::new(|_| 0.1),
            Box::new(|_| -2.0),
            Box::new(|_| 2.0),
        ];
        let mut widest = 0f32;
        for edge in &edges {
            let fast = ca.reaching(&cb, edge);
            assert_eq!(
                fast,
                ca.reaching_with(&cb, edge, false),
                "VNNI and portable agree"
            );
            for (i, near) in fast.iter().enumerate() {
                assert!(near.windows(2).all(|w| w[0] < w[1]));
                for j in 0..rb.len() {
                    if cos(i, j) >= edge(i) + rounding {
                        assert!(near.contains(&(j as u32)), "pair {i} {j} left out");
                    }
                }
                if i >= 10 {
                    for &j in near {
                        widest = widest.max(edge(i) - cos(i, j as usize));
                    }
                }
            }
        }
        assert!(ca.reaching(&cb, |_| -2.0).iter().all(|n| n.len() == 157));
        assert!(ca.reaching(&cb, |_| 2.0).iter().all(Vec::is_empty));
        // Close enough to leave out nearly every pair of unremarkable vectors.
        assert!(widest < 0.03, "a pair {widest} below its edge came in");
    }

    #[test]
    fn packed_columns_give_every_product() {
        let a = random_unit_vectors(9, 100, 13);
        let b = random_unit_vectors(37, 100, 14);
        let (ca, cb) = (Coarse::of(rows(&a)), Columns::of(rows(&b)));
        assert_eq!(
            (ca.width, cb.blocks),
            (128, 3),
            "padded to 64 lanes and 16 columns"
        );
        // Every pair reaching -1 (all of them), by both ways of multiplying, and none of the
        // padding columns.
        for vnni in [false, has_vnni()] {
            let all = ca.reaching_with(&cb, |_| -2.0, vnni);
            assert!(all.iter().all(|n| *n == (0..37).collect::<Vec<u32>>()));
        }
        assert!(Coarse::of(Vec::<&[f32]>::new())
            .reaching(&cb, |_| 0.0)
            .is_empty());
        assert_eq!(
            ca.reaching(&Columns::of(Vec::<&[f32]>::new()), |_| 0.0),
            vec![Vec::<u32>::new(); 9]
        );
    }
}
