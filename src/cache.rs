//! The embedding cache: vectors keyed by (model, hash of the text), kept in the state folder
//! (`<corpus>/.relink/` by default) so that a rerun embeds only new or edited articles.
//!
//! Layout of `embeddings.bin` (little-endian), format version [`FORMAT_VERSION`]:
//!
//! ```text
//! header:  b"RLNKEMB\0"  u32 version  u32 dim  u32 id_len  id_len bytes of model id
//! record:  u128 key (xxh3-128 of the text)  dim x f32  u64 xxh3 of the key and vector bytes
//! ```
//!
//! Records are only ever appended, and each carries its own checksum, so a run killed in the
//! middle of a write loses at most the record being written: the next run drops the torn tail
//! and goes on. A file written by another model or another format version is not read: it is
//! replaced by an empty cache for the current model.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ndarray::ArrayView1;

const MAGIC: &[u8; 8] = b"RLNKEMB\0";
/// Version of the on-disk layout; bump it when the layout changes.
pub const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "embeddings.bin";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the model gives {got}-d vectors, the cache holds {expected}-d ones")]
    Dimension {
        path: PathBuf,
        expected: usize,
        got: usize,
    },
}

/// The cache key of a text.
pub fn text_key(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// What opening the cache found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// No cache file yet.
    New,
    /// A cache of this model and version, with this many vectors.
    Loaded(usize),
    /// A cache of this model whose tail was torn (a killed run); the whole records were kept.
    Repaired(usize),
    /// A cache of another model or format version, discarded.
    Replaced(String),
}

/// Vectors of one model, by text key.
pub struct EmbeddingCache {
    path: PathBuf,
    model_id: String,
    dim: usize,
    /// key -> its vector's row in `data`
    rows: HashMap<u128, usize>,
    /// The vectors, `dim` floats each, one block: a vector apiece was an allocation of its own
    /// (1.5 GB of them at a million), and what they left on the heap when freed stayed under
    /// everything the run allocated after.
    data: Vec<f32>,
    /// Records appended by this process, not yet on disk.
    pending: Vec<u128>,
}

impl EmbeddingCache {
    /// Opens (or starts) the cache of `model_id` in folder `dir`.
    pub fn open(
        dir: &Path,
        model_id: &str,
        dim: usize,
    ) -> Result<(EmbeddingCache, Opened), CacheError> {
        let path = dir.join(FILE_NAME);
        let mut cache = EmbeddingCache {
            path: path.clone(),
            model_id: model_id.to_string(),
            dim,
            rows: HashMap::new(),
            data: Vec::new(),
            pending: Vec::new(),
        };
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let file = match crate::fsutil::open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((cache, Opened::New)),
            Err(source) => return Err(io(source)),
        };
        let size = file.metadata().map_err(io)?.len() as usize;
        // Read record by record rather than whole: the file is as large as the vectors.
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let header = cache.header();
        let mut head = Vec::with_capacity(header.len());
        (&mut reader)
            .take(header.len() as u64)
            .read_to_end(&mut head)
            .map_err(io)?;
        if head != header {
            // Enough of the file to say what it holds.
            (&mut reader)
                .take(20 + 1024)
                .read_to_end(&mut head)
                .map_err(io)?;
            let found = describe_header(&head);
            cache.rewrite()?;
            return Ok((cache, Opened::Replaced(found)));
        }
        let record = cache.record_len();
        let body = size.saturating_sub(header.len());
        let mut torn = !body.is_multiple_of(record);
        cache.data.reserve_exact(body / record * dim);
        cache.rows.reserve(body / record);
        let mut rec = vec![0u8; record];
        for _ in 0..body / record {
            match reader.read_exact(&mut rec) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    torn = true;
                    break;
                }
                Err(source) => return Err(io(source)),
            }
            let (payload, sum) = rec.split_at(record - 8);
            if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(sum.try_into().unwrap()) {
                // Everything after a bad record is suspect: keep what came before.
                torn = true;
                break;
            }
            let key = u128::from_le_bytes(payload[..16].try_into().unwrap());
            let v = payload[16..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
            cache.put(key, v);
        }
        if torn {
            cache.rewrite()?;
            let n = cache.rows.len();
            return Ok((cache, Opened::Repaired(n)));
        }
        let n = cache.rows.len();
        Ok((cache, Opened::Loaded(n)))
    }

    /// Sets the vector of `key` (in its row when it has one); true when the key is new.
    fn put(&mut self, key: u128, v: impl Iterator<Item = f32>) -> bool {
        match self.rows.get(&key) {
            Some(&row) => {
                for (slot, x) in self.data[row * self.dim..(row + 1) * self.dim]
                    .iter_mut()
                    .zip(v)
                {
                    *slot = x;
                }
                false
            }
            None => {
                self.rows.insert(key, self.data.len() / self.dim);
                self.data.extend(v);
                true
            }
        }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, key: u128) -> Option<&[f32]> {
        let row = *self.rows.get(&key)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }

    /// Makes room for `more` vectors to come, so that adding them does not copy the block.
    pub fn reserve(&mut self, more: usize) {
        self.data.reserve_exact(more * self.dim);
        self.rows.reserve(more);
    }

    /// Adds a vector; it reaches the disk at the next [`flush`](Self::flush). A vector of
    /// another width than the cache's is refused.
    pub fn insert(&mut self, key: u128, vector: ArrayView1<f32>) -> Result<(), CacheError> {
        if vector.len() != self.dim {
            return Err(CacheError::Dimension {
                path: self.path.clone(),
                expected: self.dim,
                got: vector.len(),
            });
        }
        if self.put(key, vector.iter().copied()) {
            self.pending.push(key);
        }
        Ok(())
    }

    /// Makes sure the cache file can be written, before any work is spent on vectors that
    /// could not be kept: creates it (with its header) when missing.
    pub fn ensure_writable(&mut self) -> Result<(), CacheError> {
        if !self.path.exists() {
            return self.rewrite();
        }
        OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .map(drop)
            .map_err(|source| CacheError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Appends the pending vectors to the file and syncs it.
    pub fn flush(&mut self) -> Result<(), CacheError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |source| CacheError::Io {
            path: self.path.clone(),
            source,
        };
        if !self.path.exists() {
            self.rewrite()?;
            return Ok(());
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut w = BufWriter::new(file);
        for key in &self.pending {
            let v = self.get(*key).expect("a pending key has a row");
            w.write_all(&self.record(*key, v)).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        self.pending.clear();
        Ok(())
    }

    /// Drops every vector whose key is not in `keep` and rewrites the file, when that frees more
    /// than half of it: edits leave old vectors behind, which are worth keeping for a while
    /// (an edit undone costs nothing) but not for ever.
    pub fn compact(&mut self, keep: &std::collections::HashSet<u128>) -> Result<bool, CacheError> {
        let unused = self.rows.keys().filter(|k| !keep.contains(k)).count();
        if unused * 2 <= self.rows.len() {
            return Ok(false);
        }
        let mut kept: Vec<(u128, usize)> = self
            .rows
            .iter()
            .filter(|(k, _)| keep.contains(k))
            .map(|(&k, &row)| (k, row))
            .collect();
        kept.sort_unstable_by_key(|&(_, row)| row);
        // Rows move down in place, in their order, so no second block is needed.
        let dim = self.dim;
        for (to, &(_, from)) in kept.iter().enumerate() {
            self.data
                .copy_within(from * dim..(from + 1) * dim, to * dim);
        }
        self.rows = kept
            .iter()
            .enumerate()
            .map(|(to, &(key, _))| (key, to))
            .collect();
        self.data.truncate(kept.len() * dim);
        self.data.shrink_to_fit();
        self.rewrite()?;
        Ok(true)
    }

    fn header(&self) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&(self.dim as u32).to_le_bytes());
        h.extend_from_slice(&(self.model_id.len() as u32).to_le_bytes());
        h.extend_from_slice(self.model_id.as_bytes());
        h
    }

    fn record_len(&self) -> usize {
        16 + 4 * self.dim + 8
    }

    fn record(&self, key: u128, v: &[f32]) -> Vec<u8> {
        let mut rec = Vec::with_capacity(self.record_len());
        rec.extend_from_slice(&key.to_le_bytes());
        for x in v {
            rec.extend_from_slice(&x.to_le_bytes());
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&rec);
        rec.extend_from_slice(&sum.to_le_bytes());
        rec
    }

    /// Writes the whole cache to a temporary file and renames it over the old one.
    fn rewrite(&mut self) -> Result<(), CacheError> {
        let io = |source| CacheError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix(crate::fsutil::TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(io)?;
        {
            let mut w = BufWriter::new(tmp.as_file());
            w.write_all(&self.header()).map_err(io)?;
            let mut keys: Vec<u128> = self.rows.keys().copied().collect();
            keys.sort_unstable();
            for key in keys {
                let v = self.get(key).expect("a key has a row");
                w.write_all(&self.record(key, v)).map_err(io)?;
            }
            w.flush().map_err(io)?;
        }
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        self.pending.clear();
        Ok(())
    }
}

/// A short description of what a foreign cache file holds, for the message that replaces it.
fn describe_header(bytes: &[u8]) -> String {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return "not a relink embedding cache".into();
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let id_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let id = bytes
        .get(20..20 + id_len)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if version != FORMAT_VERSION {
        format!("format version {version}, this relink writes {FORMAT_VERSION}")
    } else {
        format!("vectors of model {id}")
    }
}

/// Reads a cache file's model id without loading it (for `relink` status messages).
pub fn peek_model_id(dir: &Path) -> Option<String> {
    let mut f = crate::fsutil::open_regular(&dir.join(FILE_NAME)).ok()?;
    let mut head = [0u8; 20];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC {
        return None;
    }
    let id_len = u32::from_le_bytes(head[16..20].try_into().unwrap()) as usize;
    let mut id = vec![0u8; id_len.min(4096)];
    f.read_exact(&mut id).ok()?;
    String::from_utf8(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn vectors_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::New);
        c.insert(text_key("a"), arr1(&[1.0, 0.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        c.insert(text_key("b"), arr1(&[0.0, 1.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        let (c, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::Loaded(2));
        assert_eq!(c.get(text_key("b")).unwrap(), &[0.0, 1.0, 0.0]);
        assert_eq!(peek_model_id(dir.path()).as_deref(), Some("m1"));
    }

    #[test]
    fn another_model_is_never_misread() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        c.insert(text_key("a"), arr1(&[1.0, 0.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        let (c, opened) = EmbeddingCache::open(dir.path(), "m2", 3).unwrap();
        assert_eq!(opened, Opened::Replaced("vectors of model m1".into()));
        assert!(c.get(text_key("a")).is_none());
        let (_, opened) = EmbeddingCache::open(dir.path(), "m2", 3).unwrap();
        assert_eq!(opened, Opened::Loaded(0));
    }

    #[test]
    fn another_format_version_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&99u32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(b"m1");
        std::fs::write(dir.path().join(FILE_NAME), bytes).unwrap();
        let (_, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(
            opened,
            Opened::Replaced("format version 99, this relink writes 1".into())
        );
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        c.insert(text_key("a"), arr1(&[1.0, 0.0, 0.0]).view())
            .unwrap();
        c.insert(text_key("b"), arr1(&[0.0, 1.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        // A run killed half-way through appending a record.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 20]).unwrap();
        drop(f);
        let (c, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::Repaired(2));
        assert_eq!(c.len(), 2);
        let (_, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::Loaded(2));
    }

    #[test]
    fn a_corrupted_record_stops_the_load_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        c.insert(text_key("a"), arr1(&[1.0, 0.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        c.insert(text_key("b"), arr1(&[0.0, 1.0, 0.0]).view())
            .unwrap();
        c.flush().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 12] ^= 0xff; // inside the last record's vector
        std::fs::write(&path, bytes).unwrap();
        let (c, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::Repaired(1));
        assert!(c.get(text_key("a")).is_some());
        assert!(c.get(text_key("b")).is_none());
    }

    #[test]
    fn compaction_waits_until_most_vectors_are_unused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = EmbeddingCache::open(dir.path(), "m1", 1).unwrap();
        for t in ["a", "b", "c"] {
            c.insert(text_key(t), arr1(&[1.0]).view()).unwrap();
        }
        c.flush().unwrap();
        let keep: std::collections::HashSet<u128> = [text_key("a"), text_key("b")].into();
        assert!(!c.compact(&keep).unwrap());
        let keep: std::collections::HashSet<u128> = [text_key("a")].into();
        assert!(c.compact(&keep).unwrap());
        let (c, _) = EmbeddingCache::open(dir.path(), "m1", 1).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn compaction_keeps_each_vector_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        let vector = |i: usize| [i as f32, -(i as f32), 0.5 * i as f32];
        for i in 0..6 {
            c.insert(text_key(&i.to_string()), arr1(&vector(i)).view())
                .unwrap();
        }
        // A key given again keeps its row and takes the newer vector.
        c.insert(text_key("4"), arr1(&vector(40)).view()).unwrap();
        c.flush().unwrap();
        let keep: std::collections::HashSet<u128> = [text_key("1"), text_key("4")].into();
        assert!(c.compact(&keep).unwrap());
        let check = |c: &EmbeddingCache| {
            assert_eq!(c.len(), 2);
            assert_eq!(c.get(text_key("1")), Some(&vector(1)[..]));
            assert_eq!(c.get(text_key("4")), Some(&vector(40)[..]));
            assert_eq!(c.get(text_key("0")), None);
        };
        check(&c);
        c.insert(text_key("7"), arr1(&vector(7)).view()).unwrap();
        c.flush().unwrap();
        let (c, opened) = EmbeddingCache::open(dir.path(), "m1", 3).unwrap();
        assert_eq!(opened, Opened::Loaded(3));
        assert_eq!(c.get(text_key("7")), Some(&vector(7)[..]));
        assert_eq!(c.get(text_key("4")), Some(&vector(40)[..]));
    }
}
