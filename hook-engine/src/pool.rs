//! Instances kept per (container, module, plugin, configuration), so a request pays a
//! context creation instead of an instantiation. Two kinds:
//! - shared: one per thread, hosting the HTTP contexts of every request of that thread
//!   in flight (the default; calls take turns under the instance's lock);
//! - idle: instances that serve one request at a time, waiting for the next.
//!
//! Instances that failed never come back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

use crate::compile::CompiledModule;
use crate::instance::HookInstance;
use crate::outcome::HookSpec;
use crate::state::PluginInfo;

/// What makes two instances interchangeable. Cheap to clone and to hash (the
/// hash is computed once), since every pooled request looks one up.
#[derive(Debug, Clone)]
pub(crate) struct PoolKey(Arc<KeyFields>);

#[derive(Debug)]
struct KeyFields {
    container: String,
    /// The compiled module, for starting instances of the key (a session takes it
    /// from its key rather than holding a reference of its own); its sha256 is
    /// what makes two keys' modules the same.
    module: Arc<CompiledModule>,
    plugin: String,
    root_id: String,
    config: Vec<u8>,
    hash: u64,
}

/// Keys are equal when their fields are, modules compared by sha256: two modules
/// of one sha256 are the same module.
impl PartialEq for KeyFields {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.container == other.container
            && self.module.sha256() == other.module.sha256()
            && self.plugin == other.plugin
            && self.root_id == other.root_id
            && self.config == other.config
    }
}

impl Eq for KeyFields {}

impl PoolKey {
    pub fn new(container: &str, spec: &HookSpec) -> Self {
        let mut fields = KeyFields {
            container: container.to_string(),
            module: spec.module.clone(),
            plugin: spec.name.clone(),
            root_id: spec.root_id.clone(),
            config: spec.config.clone(),
            hash: 0,
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &fields.container,
            fields.module.sha256(),
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
            && (Arc::ptr_eq(&k.module, &spec.module) || k.module.sha256() == spec.module.sha256())
            && k.plugin == spec.name
            && k.root_id == spec.root_id
            && k.config == spec.config
    }

    pub fn container(&self) -> &str {
        &self.0.container
    }

    /// The compiled module instances of this key run.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.0.module
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
    /// Tells this pool's entries in the threads' [`HOME`] lists from another's.
    id: u64,
}

/// Pool ids, unique in the process.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);

/// Most shared instances a thread remembers in [`HOME`].
const HOME_ENTRIES: usize = 32;

thread_local! {
    /// The shared instances this thread found last, by pool and key: a request finds
    /// its thread's instance here without the pool's lock, which every worker would
    /// otherwise take (and move between cores) on every request. Weak, so the pool
    /// alone decides how long an instance lives; entries the pool let go of are
    /// marked retired and ignored.
    static HOME: RefCell<Vec<(u64, PoolKey, Weak<SharedInstance>)>> =
        const { RefCell::new(Vec::new()) };
}

/// An instance hosting the contexts of several requests in flight. A failed call
/// breaks it: it leaves the pool, and the requests whose contexts live in it fail
/// their next phase (their policy decides the answer), as in Envoy when a VM fails.
pub(crate) struct SharedInstance {
    instance: Mutex<HookInstance>,
    broken: AtomicBool,
    /// Out of the pool (evicted, shed or broken): requests holding it finish on it,
    /// no new one starts on it.
    retired: AtomicBool,
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
        self.retire();
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    fn in_pool(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
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
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
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
        if let Some(found) = self.remembered(key) {
            return Some(found);
        }
        let here = std::thread::current().id();
        let found = self
            .lock_shared()
            .get(key)?
            .iter()
            .find(|s| s.home == here && s.in_pool())
            .cloned()?;
        self.remember(key, &found);
        Some(found)
    }

    /// This thread's instance of `key` from [`HOME`], while the pool still holds it.
    fn remembered(&self, key: &PoolKey) -> Option<Arc<SharedInstance>> {
        HOME.with(|home| {
            let home = home.borrow();
            let (_, _, weak) = home.iter().find(|(id, k, _)| *id == self.id && k == key)?;
            weak.upgrade().filter(|s| s.in_pool())
        })
    }

    /// Notes `instance` in [`HOME`] as this thread's one of `key`, forgetting entries
    /// of instances gone or out of the pool.
    fn remember(&self, key: &PoolKey, instance: &Arc<SharedInstance>) {
        HOME.with(|home| {
            let mut home = home.borrow_mut();
            home.retain(|(id, k, weak)| {
                let live = weak.upgrade().is_some_and(|s| s.in_pool());
                live && !(*id == self.id && k == key)
            });
            if home.len() == HOME_ENTRIES {
                home.remove(0);
            }
            home.push((self.id, key.clone(), Arc::downgrade(instance)));
        });
    }

    /// Makes `instance` this thread's shared instance of `key`.
    pub fn add_shared(&self, key: PoolKey, instance: HookInstance) -> Arc<SharedInstance> {
        let here = std::thread::current().id();
        let added = Arc::new(SharedInstance {
            instance: Mutex::new(instance),
            broken: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            home: here,
        });
        let mut shared = self.lock_shared();
        let list = shared.entry(key.clone()).or_default();
        list.retain(|s| {
            let mine = s.home == here;
            if mine {
                s.retire();
            }
            !mine
        });
        list.push(added.clone());
        drop(shared);
        self.remember(&key, &added);
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
        self.lock_shared().retain(|key, list| {
            let keep = key.container() != container;
            if !keep {
                list.iter().for_each(|s| s.retire());
            }
            keep
        });
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
                if drop_it {
                    s.retire();
                }
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
        // The compiled module in a key may change inside, but neither the key's
        // hash nor its equality looks at it.
        #[allow(clippy::mutable_key_type)]
        let mut map: KeyMap<u8> = KeyMap::default();
        map.insert(first, 1);
        assert_eq!(map.get(&PoolKey::new("c1", &spec)), Some(&1));
        assert_eq!(map.get(&other), None);
    }
}
