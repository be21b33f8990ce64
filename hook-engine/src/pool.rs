//! Instances kept per (container, module, plugin, configuration), so a request pays a
//! context creation instead of an instantiation. Two kinds:
//! - shared: one per thread, hosting the HTTP contexts of every request of that thread
//!   in flight (the default; calls take turns under the instance's lock);
//! - idle: instances that serve one request at a time, waiting for the next.
//!
//! Instances that failed never come back.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

use crate::instance::HookInstance;
use crate::outcome::HookSpec;
use crate::state::PluginInfo;

/// What makes two instances interchangeable. Cheap to clone and to hash (the
/// hash is computed once), since every pooled request looks one up.
#[derive(Debug, Clone)]
pub(crate) struct PoolKey(Arc<KeyFields>);

#[derive(Debug, PartialEq, Eq)]
struct KeyFields {
    container: String,
    module: String,
    plugin: String,
    root_id: String,
    config: Vec<u8>,
    hash: u64,
}

impl PoolKey {
    pub fn new(container: &str, spec: &HookSpec) -> Self {
        let mut fields = KeyFields {
            container: container.to_string(),
            module: spec.module.sha256().to_string(),
            plugin: spec.name.clone(),
            root_id: spec.root_id.clone(),
            config: spec.config.clone(),
            hash: 0,
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &fields.container,
            &fields.module,
            &fields.plugin,
            &fields.root_id,
            &fields.config,
        )
            .hash(&mut hasher);
        fields.hash = hasher.finish();
        Self(Arc::new(fields))
    }

    /// The key of `spec` in `container`: the one the spec cached when it
    /// still describes them (no allocation), else a new one.
    pub fn of(container: &str, spec: &HookSpec) -> Self {
        if let Some(key) = spec.pool_key.get() {
            if key.describes(container, spec) {
                return key.clone();
            }
            return Self::new(container, spec);
        }
        spec.pool_key
            .get_or_init(|| Self::new(container, spec))
            .clone()
    }

    fn describes(&self, container: &str, spec: &HookSpec) -> bool {
        let k = &self.0;
        k.container == container
            && k.module == spec.module.sha256()
            && k.plugin == spec.name
            && k.root_id == spec.root_id
            && k.config == spec.config
    }

    pub fn container(&self) -> &str {
        &self.0.container
    }

    /// The plugin identity an instance of this key starts with.
    pub fn plugin(&self) -> PluginInfo {
        let k = &self.0;
        PluginInfo {
            name: k.plugin.clone(),
            root_id: k.root_id.clone(),
            container_id: k.container.clone(),
            config: k.config.clone(),
        }
    }

    /// `plugin_name`, for log lines.
    pub fn plugin_name(&self) -> &str {
        &self.0.plugin
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for PoolKey {}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// Passes a key's precomputed hash through (the map hashes nothing else).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<V> = HashMap<PoolKey, V, BuildHasherDefault<KeyHasher>>;

pub(crate) struct InstancePool {
    idle: Mutex<KeyMap<Vec<Idle>>>,
    shared: Mutex<KeyMap<Vec<Arc<SharedInstance>>>>,
    max_idle_per_key: usize,
}

/// An instance hosting the contexts of several requests in flight. A failed call
/// breaks it: it leaves the pool, and the requests whose contexts live in it fail
/// their next phase (their policy decides the answer), as in Envoy when a VM fails.
pub(crate) struct SharedInstance {
    instance: Mutex<HookInstance>,
    broken: AtomicBool,
    home: ThreadId,
}

impl SharedInstance {
    /// The instance, for one call. `None` once broken.
    pub fn lock(&self) -> Option<MutexGuard<'_, HookInstance>> {
        let guard = self.instance.lock().ok()?;
        (!self.is_broken()).then_some(guard)
    }

    /// The instance if no call is running on it (ticks skip busy instances).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, HookInstance>> {
        let guard = self.instance.try_lock().ok()?;
        (!self.is_broken()).then_some(guard)
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }
}

/// An idle instance and the thread that last ran it.
struct Idle {
    instance: HookInstance,
    home: std::thread::ThreadId,
}

impl InstancePool {
    pub fn new(max_idle_per_key: usize) -> Self {
        Self {
            idle: Mutex::default(),
            shared: Mutex::default(),
            max_idle_per_key,
        }
    }

    /// An idle instance of `key`, preferably one this thread ran last: its store and
    /// guest memory are still warm in this core's caches (the proxy runs one worker
    /// per core, and instances would otherwise alternate between them).
    pub fn take(&self, key: &PoolKey) -> Option<HookInstance> {
        let here = std::thread::current().id();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let at = list
            .iter()
            .rposition(|i| i.home == here)
            .or_else(|| list.len().checked_sub(1))?;
        Some(list.swap_remove(at).instance)
    }

    /// Keeps a healthy instance for reuse, or drops it when enough are idle.
    pub fn give_back(&self, key: PoolKey, instance: HookInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let slot = idle.entry(key).or_default();
        if slot.len() < self.max_idle_per_key {
            slot.push(Idle {
                instance,
                home: std::thread::current().id(),
            });
        }
    }

    /// This thread's shared instance of `key`, if it has a healthy one.
    pub fn shared(&self, key: &PoolKey) -> Option<Arc<SharedInstance>> {
        let here = std::thread::current().id();
        let shared = self.lock_shared();
        shared
            .get(key)?
            .iter()
            .find(|s| s.home == here && !s.is_broken())
            .cloned()
    }

    /// Makes `instance` this thread's shared instance of `key`.
    pub fn add_shared(&self, key: PoolKey, instance: HookInstance) -> Arc<SharedInstance> {
        let here = std::thread::current().id();
        let added = Arc::new(SharedInstance {
            instance: Mutex::new(instance),
            broken: AtomicBool::new(false),
            home: here,
        });
        let mut shared = self.lock_shared();
        let list = shared.entry(key).or_default();
        list.retain(|s| s.home != here);
        list.push(added.clone());
        added
    }

    /// Takes a shared instance whose call failed out of the pool; the requests still
    /// holding it see it broken.
    pub fn break_shared(&self, key: &PoolKey, broken: &Arc<SharedInstance>) {
        broken.mark_broken();
        let mut shared = self.lock_shared();
        if let Some(list) = shared.get_mut(key) {
            list.retain(|s| !Arc::ptr_eq(s, broken));
            if list.is_empty() {
                shared.remove(key);
            }
        }
    }

    /// The shared instances, for ticking outside the pool's lock.
    pub fn shared_instances(&self) -> Vec<(PoolKey, Arc<SharedInstance>)> {
        let shared = self.lock_shared();
        shared
            .iter()
            .flat_map(|(key, list)| list.iter().map(move |s| (key.clone(), s.clone())))
            .collect()
    }

    /// Instances kept for reuse: idle ones and shared ones.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let shared = self.lock_shared();
        idle.values().map(Vec::len).sum::<usize>() + shared.values().map(Vec::len).sum::<usize>()
    }

    /// Drops the instances of a container (module deleted, container removed);
    /// requests in flight finish on the shared ones they hold.
    pub fn evict_container(&self, container: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|key, _| key.container() != container);
        drop(idle);
        self.lock_shared()
            .retain(|key, _| key.container() != container);
    }

    /// Drops up to `count` idle instances, from the keys holding the most, then shared
    /// instances no request holds, to free allocator slots. Returns how many went.
    pub fn shed(&self, count: usize) -> usize {
        let shed = self.shed_idle(count);
        let mut shared = self.lock_shared();
        let mut left = count - shed;
        for list in shared.values_mut() {
            list.retain(|s| {
                let drop_it = left > 0 && Arc::strong_count(s) == 1;
                left -= usize::from(drop_it);
                !drop_it
            });
        }
        shared.retain(|_, list| !list.is_empty());
        count - left
    }

    fn lock_shared(&self) -> MutexGuard<'_, KeyMap<Vec<Arc<SharedInstance>>>> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shed_idle(&self, count: usize) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut shed = 0;
        while shed < count {
            let Some(list) = idle.values_mut().max_by_key(|list| list.len()) else {
                break;
            };
            if list.pop().is_none() {
                break;
            }
            shed += 1;
        }
        shed
    }

    /// Takes every idle instance out, for ticking outside the lock.
    pub fn drain(&self) -> Vec<(PoolKey, HookInstance)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter_mut()
            .flat_map(|(key, list)| list.drain(..).map(move |i| (key.clone(), i.instance)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineConfig, HookEngine};

    #[test]
    fn a_spec_reuses_its_key_until_its_fields_or_the_container_differ() {
        let engine = HookEngine::new(EngineConfig::default()).expect("engine");
        let module = engine
            .compile_text(
                r#"(module (memory (export "memory") 1)
                  (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#,
            )
            .expect("module");
        let spec = HookSpec::new("tagger", module);
        let first = PoolKey::of("c1", &spec);
        let again = PoolKey::of("c1", &spec);
        assert!(Arc::ptr_eq(&first.0, &again.0), "cached key reused");

        // A clone shares the cache; edited, it must not get the old key.
        let mut edited = spec.clone();
        edited.config = b"other".to_vec();
        let other = PoolKey::of("c1", &edited);
        assert_ne!(other, first);
        assert_ne!(PoolKey::of("c2", &spec), first);

        // Equal fields make equal keys whatever their allocation.
        assert_eq!(PoolKey::new("c1", &spec), first);
        let mut map: KeyMap<u8> = KeyMap::default();
        map.insert(first, 1);
        assert_eq!(map.get(&PoolKey::new("c1", &spec)), Some(&1));
        assert_eq!(map.get(&other), None);
    }
}
