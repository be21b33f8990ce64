//! Idle instances kept per (container, module, plugin, configuration), so a request pays
//! a context creation instead of an instantiation. Instances that failed never come back.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::instance::HookInstance;
use crate::outcome::HookSpec;

/// What makes two instances interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub container: String,
    pub module: String,
    pub plugin: String,
    pub root_id: String,
    pub config: Vec<u8>,
}

impl PoolKey {
    pub fn new(container: &str, spec: &HookSpec) -> Self {
        Self {
            container: container.to_string(),
            module: spec.module.sha256().to_string(),
            plugin: spec.name.clone(),
            root_id: spec.root_id.clone(),
            config: spec.config.clone(),
        }
    }
}

pub(crate) struct InstancePool {
    idle: Mutex<HashMap<PoolKey, Vec<HookInstance>>>,
    max_idle_per_key: usize,
}

impl InstancePool {
    pub fn new(max_idle_per_key: usize) -> Self {
        Self {
            idle: Mutex::default(),
            max_idle_per_key,
        }
    }

    pub fn take(&self, key: &PoolKey) -> Option<HookInstance> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(key)?.pop()
    }

    /// Keeps a healthy instance for reuse, or drops it when enough are idle.
    pub fn give_back(&self, key: PoolKey, instance: HookInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let slot = idle.entry(key).or_default();
        if slot.len() < self.max_idle_per_key {
            slot.push(instance);
        }
    }

    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// Drops the idle instances of a container (module deleted, container removed).
    pub fn evict_container(&self, container: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|key, _| key.container != container);
    }

    /// Takes every idle instance out, for ticking outside the lock.
    pub fn drain(&self) -> Vec<(PoolKey, HookInstance)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter_mut()
            .flat_map(|(key, list)| list.drain(..).map(move |i| (key.clone(), i)))
            .collect()
    }
}
