//! The per-session embedding cache: one embedding (all the tensors a model encodes a slice into) per (slice
//! axis, slice), shared by every object and every run of a session, bounded by a memory budget with
//! least-recently-used eviction. What memory evicts goes to the spill tier (`spill`) when the session has
//! one, and is read back from there instead of encoded again.
//!
//! Several workers may ask for embeddings at once. A slice that one worker is encoding is marked in flight;
//! a second worker asking for it waits for that result instead of encoding it again, so within the budgets a
//! slice is encoded at most once per session.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::spill::Spill;
use crate::error::{Error, Result};
use crate::model::{Embedding, EmbeddingLayout};

/// Which slice of which propagation axis an embedding belongs to.
pub type SliceKey = (u8, usize);

/// Counters that tests, the JSON report and the benchmarks read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub encoded: usize,
    pub hits: usize,
    /// Embeddings evicted from memory (kept in the spill tier when there is one).
    pub evicted: usize,
    /// Bytes and embeddings held in memory.
    pub bytes: usize,
    pub entries: usize,
    /// The spill tier: embeddings written to it, read back from it instead of encoded, and bytes in use.
    pub spilled: usize,
    pub restored: usize,
    pub spill_bytes: usize,
}

struct Entry {
    embedding: Arc<Embedding>,
    last_use: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SliceKey, Entry>,
    in_flight: Vec<SliceKey>,
    clock: u64,
    stats: CacheStats,
    spill: Option<Spill>,
}

impl Inner {
    fn stats(&self) -> CacheStats {
        let mut s = self.stats;
        if let Some(t) = &self.spill {
            let t = t.stats();
            (s.spilled, s.restored, s.spill_bytes) = (t.written, t.restored, t.bytes);
        }
        s
    }

    /// `key`'s embedding from the spill tier into `buf`, if the tier holds it. The I/O happens under the
    /// cache's lock: a page-cache copy of 4 MiB (about a millisecond) next to encoder runs of a second.
    fn restore(&mut self, key: SliceKey, buf: &mut Embedding) -> bool {
        let now = self.clock;
        let Some(t) = self.spill.as_mut() else { return false };
        match t.restore(key, buf, now) {
            Ok(found) => found,
            Err(e) => {
                log::warn!("embedding spill file unreadable ({e}); evicted slices will be encoded again");
                self.spill = None;
                false
            }
        }
    }
}

pub struct EmbeddingCache {
    budget: usize,
    entry_bytes: usize,
    layout: EmbeddingLayout,
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl EmbeddingCache {
    /// A cache holding at most `budget_bytes` of embeddings of `layout`. A budget that cannot hold a single
    /// embedding is an error: propagation needs the current slice's embedding.
    pub fn new(budget_bytes: usize, layout: EmbeddingLayout) -> Result<EmbeddingCache> {
        Self::with_spill(budget_bytes, None, layout)
    }

    /// `new`, with what memory evicts kept in `spill` (see `Spill::create`).
    pub fn with_spill(budget_bytes: usize, spill: Option<Spill>, layout: EmbeddingLayout) -> Result<EmbeddingCache> {
        let entry_bytes = layout.bytes();
        if budget_bytes < entry_bytes {
            return Err(Error::BudgetTooSmall(format!(
                "embedding cache budget of {budget_bytes} bytes cannot hold one embedding ({entry_bytes} bytes)"
            )));
        }
        Ok(EmbeddingCache {
            budget: budget_bytes,
            entry_bytes,
            layout,
            inner: Mutex::new(Inner { spill, ..Inner::default() }),
            ready: Condvar::new(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.budget / self.entry_bytes
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.lock().stats()
    }

    /// Whether `key` is held in memory.
    pub fn contains(&self, key: SliceKey) -> bool {
        self.inner.lock().entries.contains_key(&key)
    }

    /// Whether `key` is held in memory or spilled, or is being encoded: asking for it encodes nothing.
    pub fn known(&self, key: SliceKey) -> bool {
        let g = self.inner.lock();
        g.entries.contains_key(&key) || g.in_flight.contains(&key) || g.spill.as_ref().is_some_and(|t| t.holds(key))
    }

    pub fn has_spill(&self) -> bool {
        self.inner.lock().spill.is_some()
    }

    /// The embedding of `key`, computed by `encode` on this thread when no one has it. `encode` fills the
    /// buffer it is given (a recycled evicted buffer when there is one).
    pub fn get_or_encode(
        &self,
        key: SliceKey,
        encode: impl FnOnce(&mut Embedding) -> Result<()>,
    ) -> Result<Arc<Embedding>> {
        let mut g = self.inner.lock();
        loop {
            g.clock += 1;
            let now = g.clock;
            if let Some(e) = g.entries.get_mut(&key) {
                e.last_use = now;
                let emb = e.embedding.clone();
                g.stats.hits += 1;
                return Ok(emb);
            }
            if !g.in_flight.contains(&key) {
                break;
            }
            self.ready.wait(&mut g);
        }
        if g.spill.as_ref().is_some_and(|t| t.holds(key)) {
            let mut buf = self.make_room(&mut g, 1);
            if g.restore(key, &mut buf) {
                let emb = Arc::new(buf);
                let now = g.clock;
                g.entries.insert(key, Entry { embedding: emb.clone(), last_use: now });
                g.stats.entries = g.entries.len();
                g.stats.bytes = g.entries.len() * self.entry_bytes;
                return Ok(emb);
            }
        }
        g.in_flight.push(key);
        let mut buf = self.make_room(&mut g, 0);
        drop(g);
        let result = encode(&mut buf);
        let mut g = self.inner.lock();
        g.in_flight.retain(|k| *k != key);
        let out = match result {
            Ok(()) => {
                // Another key may have filled the room meanwhile.
                let _ = self.make_room(&mut g, 1);
                let emb = Arc::new(buf);
                g.clock += 1;
                let now = g.clock;
                g.entries.insert(key, Entry { embedding: emb.clone(), last_use: now });
                g.stats.encoded += 1;
                g.stats.entries = g.entries.len();
                g.stats.bytes = g.entries.len() * self.entry_bytes;
                Ok(emb)
            }
            Err(e) => Err(e),
        };
        drop(g);
        self.ready.notify_all();
        out
    }

    /// Evicts least-recently-used entries until the entries, those in flight and `incoming` more fit; returns
    /// a buffer to fill (an evicted one when no one else still holds it, so steady-state propagation allocates
    /// nothing).
    fn make_room(&self, g: &mut Inner, incoming: usize) -> Embedding {
        let mut spare = None;
        while (g.entries.len() + g.in_flight.len() + incoming) * self.entry_bytes > self.budget && !g.entries.is_empty()
        {
            let oldest = *g.entries.iter().min_by_key(|(_, e)| e.last_use).map(|(k, _)| k).expect("not empty");
            let e = g.entries.remove(&oldest).expect("present");
            g.stats.evicted += 1;
            let now = g.clock;
            if let Some(t) = g.spill.as_mut() {
                // Under the lock, as `Inner::restore` says; a slice read back earlier is written no more.
                if let Err(err) = t.put(oldest, &e.embedding, now) {
                    log::warn!("embedding spill file unwritable ({err}); evicted slices will be encoded again");
                    g.spill = None;
                }
            }
            if spare.is_none() {
                spare = Arc::try_unwrap(e.embedding).ok();
            }
        }
        g.stats.entries = g.entries.len();
        g.stats.bytes = g.entries.len() * self.entry_bytes;
        spare.unwrap_or_else(|| self.layout.zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(v: f32) -> impl FnOnce(&mut Embedding) -> Result<()> {
        move |b| {
            b.tensors.iter_mut().flatten().for_each(|x| *x = v);
            Ok(())
        }
    }

    /// `n` f32 values in one tensor.
    fn layout(n: usize) -> EmbeddingLayout {
        EmbeddingLayout { tensors: vec![("e".into(), vec![n])] }
    }

    #[test]
    fn a_budget_below_one_embedding_is_refused() {
        assert!(matches!(EmbeddingCache::new(15, layout(4)), Err(Error::BudgetTooSmall(_))));
        assert_eq!(EmbeddingCache::new(16, layout(4)).unwrap().capacity(), 1);
    }

    #[test]
    fn hits_do_not_encode_and_lru_evicts_the_oldest() {
        let c = EmbeddingCache::new(2 * 16, layout(4)).unwrap();
        c.get_or_encode((2, 0), fill(0.0)).unwrap();
        c.get_or_encode((2, 1), fill(1.0)).unwrap();
        let again = c.get_or_encode((2, 0), |_| panic!("cached")).unwrap();
        assert_eq!(again.tensors[0][0], 0.0);
        c.get_or_encode((2, 2), fill(2.0)).unwrap(); // evicts slice 1, the least recently used
        assert!(c.contains((2, 0)) && c.contains((2, 2)) && !c.contains((2, 1)));
        let s = c.stats();
        assert_eq!((s.encoded, s.hits, s.evicted, s.entries, s.bytes), (3, 1, 1, 2, 32));
    }

    #[test]
    fn a_multi_tensor_embedding_is_budgeted_by_all_its_tensors() {
        // 3 + 5 values = 32 bytes per slice: a 64-byte budget holds two slices.
        let two = EmbeddingLayout { tensors: vec![("image".into(), vec![3]), ("high_res".into(), vec![5])] };
        let c = EmbeddingCache::new(64, two).unwrap();
        assert_eq!(c.capacity(), 2);
        for z in 0..3 {
            let e = c
                .get_or_encode((2, z), |b| {
                    assert_eq!(b.tensors.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 5]);
                    b.tensors[1][4] = z as f32;
                    Ok(())
                })
                .unwrap();
            assert_eq!(e.tensors[1][4], z as f32);
        }
        let s = c.stats();
        assert_eq!((s.encoded, s.evicted, s.entries, s.bytes), (3, 1, 2, 64));
    }

    #[test]
    fn what_memory_evicts_is_read_back_from_the_spill_file_not_encoded() {
        let spill = Spill::create(1 << 20, 16).unwrap();
        let c = EmbeddingCache::with_spill(16, spill, layout(4)).unwrap(); // one embedding in memory
        c.get_or_encode((2, 0), fill(0.5)).unwrap();
        c.get_or_encode((2, 1), fill(1.5)).unwrap(); // slice 0 goes to the file
        assert!(!c.contains((2, 0)) && c.known((2, 0)) && !c.known((2, 2)));
        let back = c.get_or_encode((2, 0), |_| panic!("spilled, not encoded again")).unwrap();
        assert_eq!(back.tensors[0], vec![0.5; 4]);
        drop(back);
        // Slice 1 goes to the file; slice 0, read back from it, is in the file still and is not written again.
        let back = c.get_or_encode((2, 1), |_| panic!("spilled, not encoded again")).unwrap();
        assert_eq!(back.tensors[0], vec![1.5; 4]);
        let s = c.stats();
        assert_eq!((s.encoded, s.hits, s.evicted, s.spilled, s.restored), (2, 0, 3, 2, 2));
        assert_eq!((s.entries, s.bytes, s.spill_bytes), (1, 16, 32));
    }

    #[test]
    fn a_failed_encode_leaves_nothing_behind() {
        let c = EmbeddingCache::new(64, layout(4)).unwrap();
        let r = c.get_or_encode((2, 5), |_| Err(Error::Inference("boom".into())));
        assert!(r.is_err());
        assert!(!c.contains((2, 5)));
        c.get_or_encode((2, 5), fill(5.0)).unwrap();
        assert_eq!(c.stats().encoded, 1);
    }

    #[test]
    fn concurrent_requests_for_one_slice_encode_it_once() {
        let c = EmbeddingCache::new(1 << 20, layout(4)).unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    c.get_or_encode((0, 7), |b| {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        b.tensors[0][0] = 7.0;
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(c.stats().hits, 3);
    }
}
