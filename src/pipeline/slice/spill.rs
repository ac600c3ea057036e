//! The embedding cache's second tier: embeddings evicted from memory, kept in an anonymous temporary file
//! (created already unlinked, so nothing of it outlives the process, even one that crashes) and read back
//! when a slice is needed again. Reading 4 MiB back costs about a millisecond; encoding the slice again
//! costs one to two seconds. So the memory budget can stay small (a 512×512×300 CT holds 1.2 GB of
//! embeddings) while no slice is encoded twice.
//!
//! Embeddings never change once encoded, so a slice read back keeps its slot: evicting it from memory
//! again writes nothing. A write that fails (disk full) turns the tier off for the rest of the session and
//! drops what it held: the slices are encoded again, nothing is wrong.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::cache::SliceKey;
use crate::model::Embedding;

/// What the tier did, for `CacheStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Embeddings written to the file.
    pub written: usize,
    /// Embeddings read back instead of encoded again.
    pub restored: usize,
    /// Embeddings dropped from the file to make room (each will be encoded again if needed).
    pub dropped: usize,
    /// Bytes of the file in use.
    pub bytes: usize,
}

struct Slot {
    index: usize,
    last_use: u64,
}

pub struct Spill {
    file: File,
    slot_bytes: usize,
    max_slots: usize,
    slots: HashMap<SliceKey, Slot>,
    /// Slots below `next` that no key holds.
    free: Vec<usize>,
    next: usize,
    stats: SpillStats,
}

impl Spill {
    /// A tier of at most `budget` bytes for embeddings of `slot_bytes` each, in a new anonymous file in the
    /// temporary directory (`TMPDIR`). None when the budget holds no embedding; an error when the file
    /// cannot be made (the caller goes on without the tier).
    pub fn create(budget: usize, slot_bytes: usize) -> std::io::Result<Option<Spill>> {
        let max_slots = budget.checked_div(slot_bytes).unwrap_or(0);
        if max_slots == 0 {
            return Ok(None);
        }
        let file = tempfile::tempfile()?;
        Ok(Some(Spill {
            file,
            slot_bytes,
            max_slots,
            slots: HashMap::new(),
            free: Vec::new(),
            next: 0,
            stats: SpillStats::default(),
        }))
    }

    pub fn stats(&self) -> SpillStats {
        self.stats
    }

    pub fn holds(&self, key: SliceKey) -> bool {
        self.slots.contains_key(&key)
    }

    /// Keeps `emb` as `key`'s, writing it unless the file already has it; the least recently used slot
    /// makes room when the file is full. Err: the write failed, and the tier must be given up.
    pub fn put(&mut self, key: SliceKey, emb: &Embedding, now: u64) -> std::io::Result<()> {
        if let Some(s) = self.slots.get_mut(&key) {
            s.last_use = now;
            return Ok(());
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.next < self.max_slots => {
                self.next += 1;
                self.next - 1
            }
            None => {
                let oldest = *self.slots.iter().min_by_key(|(_, s)| s.last_use).map(|(k, _)| k).expect("full");
                self.stats.dropped += 1;
                self.slots.remove(&oldest).expect("present").index
            }
        };
        let mut at = (index * self.slot_bytes) as u64;
        for t in &emb.tensors {
            let bytes: &[u8] = bytemuck::cast_slice(t);
            if let Err(e) = self.file.write_all_at(bytes, at) {
                self.free.push(index);
                return Err(e);
            }
            at += bytes.len() as u64;
        }
        self.slots.insert(key, Slot { index, last_use: now });
        self.stats.written += 1;
        self.stats.bytes = self.slots.len() * self.slot_bytes;
        Ok(())
    }

    /// Reads `key`'s embedding into `into` (of the same layout); false when the file does not hold it.
    /// Err: the read failed, and the tier must be given up.
    pub fn restore(&mut self, key: SliceKey, into: &mut Embedding, now: u64) -> std::io::Result<bool> {
        let Some(s) = self.slots.get_mut(&key) else { return Ok(false) };
        s.last_use = now;
        let mut at = (s.index * self.slot_bytes) as u64;
        for t in &mut into.tensors {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(t);
            self.file.read_exact_at(bytes, at)?;
            at += bytes.len() as u64;
        }
        self.stats.restored += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(v: f32) -> Embedding {
        Embedding { tensors: vec![vec![v; 3], vec![v + 0.5; 2]] }
    }

    #[test]
    fn a_budget_below_one_slot_makes_no_tier() {
        assert!(Spill::create(19, 20).unwrap().is_none());
        assert!(Spill::create(0, 20).unwrap().is_none());
    }

    #[test]
    fn what_is_put_comes_back_bit_for_bit_and_the_oldest_slot_makes_room() {
        let mut s = Spill::create(2 * 20, 20).unwrap().unwrap();
        let odd = Embedding { tensors: vec![vec![f32::MIN_POSITIVE, -0.0, f32::NAN], vec![1e-40, f32::MAX]] };
        s.put((2, 0), &odd, 1).unwrap();
        s.put((2, 1), &emb(1.0), 2).unwrap();
        let mut back = emb(9.0);
        assert!(s.restore((2, 0), &mut back, 3).unwrap());
        let bits = |e: &Embedding| e.tensors.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&odd));
        // Slice 0 was used at 3, slice 1 at 2: slice 1 makes room for slice 2.
        s.put((2, 2), &emb(2.0), 4).unwrap();
        assert!(s.holds((2, 0)) && s.holds((2, 2)) && !s.holds((2, 1)));
        assert!(!s.restore((2, 1), &mut back, 5).unwrap());
        assert!(s.restore((2, 2), &mut back, 6).unwrap());
        assert_eq!(back, emb(2.0));
        // Putting a slice the file holds writes nothing.
        s.put((2, 2), &emb(7.0), 7).unwrap();
        assert!(s.restore((2, 2), &mut back, 8).unwrap());
        assert_eq!(back, emb(2.0));
        assert_eq!(s.stats(), SpillStats { written: 3, restored: 3, dropped: 1, bytes: 40 });
    }
}
