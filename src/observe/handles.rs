//! [`Handles`]: metric handles registered once per label set, instead of on every decision.
//!
//! The `metrics` macros register a metric with the recorder each time they run: a
//! Prometheus recorder hashes the name and labels and looks them up in its registry, after
//! the labels were copied into a `Vec`. For a metric recorded on every request that costs
//! more than the decision it records (`docs/benchmarks.md`, "Metrics"). The `metrics`
//! crate's answer is to keep the handle; a layer cannot keep one per label set ahead of
//! time (the routes and outcomes are known only as requests come), so this table keeps
//! them as they are first seen.
//!
//! Reading takes no lock: the table is an immutable snapshot behind an `ArcSwap`, replaced
//! (copied, one entry more) when a label set is seen for the first time.
//!
//! Handles belong to the recorder that made them, so the table starts again when:
//! - the current recorder is another one (found by its address): one installed after the
//!   first requests, or a thread's local recorder in tests. Threads recording into different
//!   recorders at the same time make the table start again each time they alternate (correct,
//!   but each decision then registers again). A local recorder dropped and another made at
//!   the same address is taken for the same recorder: give each local recorder its own
//!   observer;
//! - [`REFRESH`] has passed since it started: a recorder may drop a metric idle for a while
//!   (the Prometheus exporter's `idle_timeout`) and count it again only once it is
//!   registered again; a kept handle would go on writing where no one reads. So a label set
//!   dropped that way comes back within `REFRESH` of its next use.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use hashbrown::HashTable;

/// How long a table is used before it starts again, in seconds.
pub(crate) const REFRESH: u64 = 60;

/// Handles of type `V` by label set `K`, for the current recorder.
pub(crate) struct Handles<K, V> {
    table: ArcSwap<Table<K, V>>,
    /// Held while a new snapshot is made, so that two first sightings do not lose one (never
    /// while the recorder runs).
    writing: Mutex<()>,
}

/// One label set: its hash, its labels and its handle.
type Entry<K, V> = Arc<(u64, K, V)>;

struct Table<K, V> {
    /// The recorder the handles were registered with (its address).
    recorder: usize,
    /// When the table started, in the caller's seconds.
    started: u64,
    entries: HashTable<Entry<K, V>>,
}

impl<K, V> Table<K, V> {
    /// The handle of a label set, when this table is for `recorder` and still fresh at
    /// `now`.
    fn find(&self, recorder: usize, now: u64, hash: u64, is: &impl Fn(&K) -> bool) -> Option<&V> {
        if self.recorder != recorder || now.abs_diff(self.started) >= REFRESH {
            return None;
        }
        let entry = self.entries.find(hash, |entry| is(&entry.1))?;
        Some(&entry.2)
    }
}

impl<K, V> Default for Handles<K, V> {
    fn default() -> Self {
        Self {
            table: ArcSwap::from_pointee(Table {
                recorder: 0,
                started: 0,
                entries: HashTable::new(),
            }),
            writing: Mutex::new(()),
        }
    }
}

impl<K, V> Handles<K, V> {
    /// Runs `record` with the handle of the label set that hashes to `hash` and that `is`
    /// selects, registering it with `register` (which gives the label set to keep and its
    /// handle) when it is not in the table. `now` is in seconds of any clock the caller
    /// has at hand (for [`REFRESH`]).
    pub(crate) fn with<R>(
        &self,
        now: u64,
        hash: u64,
        is: impl Fn(&K) -> bool,
        register: impl FnOnce() -> (K, V),
        record: impl FnOnce(&V) -> R,
    ) -> R {
        let recorder = current_recorder();
        let table = self.table.load();
        if let Some(handle) = table.find(recorder, now, hash, &is) {
            return record(handle);
        }
        drop(table);
        // Registered outside the lock (the recorder runs no code of ours under it):
        // registering a label set twice gives handles to the same metric.
        let (key, handle) = register();
        let result = record(&handle);
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let table = self.table.load();
        if table.find(recorder, now, hash, &is).is_some() {
            // Another thread kept it meanwhile.
            return result;
        }
        let fresh = table.recorder == recorder && now.abs_diff(table.started) < REFRESH;
        let (mut entries, started) = if fresh {
            (table.entries.clone(), table.started)
        } else {
            (HashTable::new(), now)
        };
        entries.insert_unique(hash, Arc::new((hash, key, handle)), |entry| entry.0);
        self.table.store(Arc::new(Table {
            recorder,
            started,
            entries,
        }));
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
