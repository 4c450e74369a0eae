//! [`Handles`]: metric handles registered once per label set, instead of on every decision.
//!
//! The `metrics` macros register a metric with the recorder each time they run: a
//! Prometheus recorder hashes the name and labels and looks them up in its registry, after
//! the labels were copied into a `Vec`. For a metric recorded on every request that costs
//! more than the decision it records (measured in `docs/benchmarks.md`). The `metrics`
//! crate's answer is to keep the handle; a layer cannot keep one per label set ahead of
//! time (the routes and outcomes are known only as requests come), so this table keeps
//! them as they are first seen.
//!
//! Reading takes no lock: the table is an immutable snapshot behind an `ArcSwap`, replaced
//! (copied, one entry more) when a label set is seen for the first time. Handles belong to
//! the recorder that made them: when the current recorder is another one (one installed
//! later, or a thread's local recorder in tests), the table starts again for it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use hashbrown::HashTable;

/// Handles of type `V` by label set `K`, for the current recorder.
pub(crate) struct Handles<K, V> {
    table: ArcSwap<Table<K, V>>,
    /// Held while a new snapshot is made, so that two first sightings do not lose one.
    writing: Mutex<()>,
}

struct Table<K, V> {
    /// The recorder the handles were registered with (its address).
    recorder: usize,
    /// Each label set with its hash and its handle.
    entries: HashTable<(u64, K, V)>,
}

impl<K, V> Table<K, V> {
    fn find(&self, recorder: usize, hash: u64, is: &impl Fn(&K) -> bool) -> Option<&V> {
        if self.recorder != recorder {
            return None;
        }
        let (_, _, handle) = self.entries.find(hash, |(_, key, _)| is(key))?;
        Some(handle)
    }
}

impl<K, V> Default for Handles<K, V> {
    fn default() -> Self {
        Self {
            table: ArcSwap::from_pointee(Table {
                recorder: 0,
                entries: HashTable::new(),
            }),
            writing: Mutex::new(()),
        }
    }
}

impl<K: Clone, V: Clone> Handles<K, V> {
    /// Runs `record` with the handle of the label set that hashes to `hash` and that `is`
    /// selects, registering it with `register` (which gives the label set to keep and its
    /// handle) the first time.
    pub(crate) fn with<R>(
        &self,
        hash: u64,
        is: impl Fn(&K) -> bool,
        register: impl FnOnce() -> (K, V),
        record: impl FnOnce(&V) -> R,
    ) -> R {
        let recorder = current_recorder();
        let table = self.table.load();
        if let Some(handle) = table.find(recorder, hash, &is) {
            return record(handle);
        }
        drop(table);
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let table = self.table.load();
        // Registered while this thread waited for the lock.
        if let Some(handle) = table.find(recorder, hash, &is) {
            return record(handle);
        }
        let mut entries = if table.recorder == recorder {
            table.entries.clone()
        } else {
            HashTable::new()
        };
        let (key, handle) = register();
        let result = record(&handle);
        entries.insert_unique(hash, (hash, key, handle), |(hash, _, _)| *hash);
        self.table.store(Arc::new(Table { recorder, entries }));
        result
    }
}

/// The address of the recorder the `metrics` macros would use now.
fn current_recorder() -> usize {
    metrics::with_recorder(|recorder| std::ptr::from_ref(recorder).cast::<()>().addr())
}

/// A fast hash for label sets. Label values come from fixed vocabularies and the
/// configuration (route templates, limit names), never from a request, so no one can
/// choose colliding keys: a keyed hash would only cost time.
#[derive(Default)]
pub(crate) struct LabelHasher(u64);

impl LabelHasher {
    /// The hash of `value`.
    pub(crate) fn hash(value: &impl Hash) -> u64 {
        let mut hasher = Self::default();
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for LabelHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut last = [0; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last));
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
