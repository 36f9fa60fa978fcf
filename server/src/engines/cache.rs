//! Loaded models, kept within a memory budget: a model asked for again is reused, and when a
//! new one would not fit, the least recently used ones are freed first. Owned by the generation
//! thread (models are used where they were loaded), so it is not shared between threads.

use std::any::Any;
use std::rc::Rc;

struct Entry {
    key: String,
    mib: u64,
    value: Rc<dyn Any>,
    last_used: u64,
    /// Never freed (the built-in model: tiny, and loaded with the device).
    pinned: bool,
}

pub struct ModelCache {
    budget_mib: u64,
    entries: Vec<Entry>,
    clock: u64,
}

impl ModelCache {
    /// A cache holding at most `budget_mib` of models (one model larger than the budget is
    /// still loaded, alone).
    pub fn new(budget_mib: u64) -> Self {
        Self { budget_mib, entries: Vec::new(), clock: 0 }
    }

    pub fn budget_mib(&self) -> u64 {
        self.budget_mib
    }

    /// Memory of the models loaded now, in MiB (their estimates).
    pub fn used_mib(&self) -> u64 {
        self.entries.iter().map(|e| e.mib).sum()
    }

    /// Keys of the loaded models, least recently used first.
    pub fn loaded(&self) -> Vec<String> {
        let mut e: Vec<&Entry> = self.entries.iter().collect();
        e.sort_by_key(|e| e.last_used);
        e.into_iter().map(|e| e.key.clone()).collect()
    }

    /// Adds a model that is never freed.
    pub fn insert_pinned<T: 'static>(&mut self, key: &str, mib: u64, value: T) {
        self.entries.retain(|e| e.key != key);
        self.clock += 1;
        self.entries.push(Entry { key: key.into(), mib, value: Rc::new(value), last_used: self.clock, pinned: true });
    }

    /// The model `key`, loaded with `load` unless it is loaded already; `mib` is its estimate.
    pub fn get_or_load<T: 'static, E>(
        &mut self,
        key: &str,
        mib: u64,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Rc<T>, E> {
        self.clock += 1;
        let now = self.clock;
        if let Some(entry) = self.entries.iter_mut().find(|e| e.key == key) {
            entry.last_used = now;
            if let Ok(value) = entry.value.clone().downcast::<T>() {
                return Ok(value);
            }
        }
        self.entries.retain(|e| e.key != key);
        self.make_room(mib);
        let _span = tracing::info_span!("load model", model = %key, mib).entered();
        let value = Rc::new(load()?);
        self.entries.push(Entry { key: key.into(), mib, value: value.clone(), last_used: now, pinned: false });
        Ok(value)
    }

    /// Frees least recently used models until `mib` more fits (or nothing else can go).
    fn make_room(&mut self, mib: u64) {
        while self.used_mib() + mib > self.budget_mib {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.pinned)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let gone = self.entries.remove(i);
            tracing::info!(model = %gone.key, mib = gone.mib, "freeing a model to make room");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn reuses_models_and_frees_the_least_recently_used_to_stay_within_budget() {
        let loads = Cell::new(0);
        let load = |v: u32| {
            loads.set(loads.get() + 1);
            Ok::<_, ()>(v)
        };
        let mut cache = ModelCache::new(10);
        cache.insert_pinned("builtin", 1, 0u32);
        assert_eq!(*cache.get_or_load("a", 4, || load(1)).unwrap(), 1);
        assert_eq!(*cache.get_or_load("b", 4, || load(2)).unwrap(), 2);
        assert_eq!(*cache.get_or_load("a", 4, || load(9)).unwrap(), 1, "a loaded model is reused");
        assert_eq!(loads.get(), 2);
        // c does not fit next to a and b: b (least recently used) goes, a and the pinned one stay.
        cache.get_or_load("c", 4, || load(3)).unwrap();
        assert_eq!(cache.loaded(), ["builtin", "a", "c"]);
        assert!(cache.used_mib() <= cache.budget_mib());
        // One model larger than the budget still loads, alone with the pinned one.
        cache.get_or_load("huge", 50, || load(4)).unwrap();
        assert_eq!(cache.loaded(), ["builtin", "huge"]);
        // A failed load leaves nothing behind.
        assert!(cache.get_or_load::<u32, ()>("bad", 1, || Err(())).is_err());
        assert!(!cache.loaded().contains(&"bad".to_string()));
    }
}
