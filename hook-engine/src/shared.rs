//! State hooks share across instances: the key-value store behind
//! `proxy_{get,set}_shared_data` (with compare-and-swap) and the metrics behind
//! `proxy_*_metric`. Both are namespaced per container so tenants never see each other's.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::abi::{MetricType, Status};

/// A shared-data key: the container it belongs to, and the guest's key.
type SharedKey = (String, Vec<u8>);
/// A shared-data value and its CAS token.
type SharedEntry = (Vec<u8>, u32);

/// Shared key-value data with a CAS token per entry, like Envoy's shared data.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: Mutex<HashMap<SharedKey, SharedEntry>>,
    max_value_bytes: usize,
    max_keys_per_container: usize,
}

impl SharedData {
    pub fn new(max_value_bytes: usize, max_keys_per_container: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max_value_bytes,
            max_keys_per_container,
        }
    }

    /// The value and its CAS token.
    pub fn get(&self, container: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(container.to_string(), key.to_vec())).cloned()
    }

    /// Stores `value`; a non-zero `cas` must equal the current token (`CasMismatch`
    /// otherwise), which lets guests implement counters without lost updates.
    pub fn set(&self, container: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        if value.len() > self.max_value_bytes {
            return Status::BadArgument;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let id = (container.to_string(), key.to_vec());
        match entries.get_mut(&id) {
            Some((_, current)) if cas != 0 && cas != *current => Status::CasMismatch,
            Some(entry) => {
                entry.0 = value.to_vec();
                entry.1 = entry.1.wrapping_add(1).max(1);
                Status::Ok
            }
            None if cas != 0 => Status::CasMismatch,
            None => {
                let used = entries.keys().filter(|(c, _)| c == container).count();
                if used >= self.max_keys_per_container {
                    return Status::InternalFailure;
                }
                entries.insert(id, (value.to_vec(), 1));
                Status::Ok
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Metric {
    container: String,
    name: String,
    kind: MetricType,
    value: i64,
}

/// Metrics defined by guests, exported in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricTable>,
}

#[derive(Debug, Default)]
struct MetricTable {
    by_id: Vec<Metric>,
    ids: HashMap<(String, String), u32>,
}

/// Metric ids handed to guests start at 1 so a zeroed id is never valid.
const METRIC_ID_BASE: u32 = 1;

impl Metrics {
    /// Defines (or finds) a metric and returns its id.
    pub fn define(&self, container: &str, name: &str, kind: MetricType) -> u32 {
        let mut table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (container.to_string(), name.to_string());
        if let Some(id) = table.ids.get(&key) {
            return *id;
        }
        let id = table.by_id.len() as u32 + METRIC_ID_BASE;
        table.by_id.push(Metric {
            container: key.0.clone(),
            name: key.1.clone(),
            kind,
            value: 0,
        });
        table.ids.insert(key, id);
        id
    }

    /// Applies `f` to a metric of `container`; `NotFound` for ids of other containers.
    pub fn update(&self, container: &str, id: u32, f: impl FnOnce(&mut i64, MetricType)) -> Status {
        let mut table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = id.wrapping_sub(METRIC_ID_BASE) as usize;
        match table.by_id.get_mut(index) {
            Some(metric) if metric.container == container => {
                f(&mut metric.value, metric.kind);
                Status::Ok
            }
            _ => Status::NotFound,
        }
    }

    pub fn get(&self, container: &str, id: u32) -> Option<i64> {
        let table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = id.wrapping_sub(METRIC_ID_BASE) as usize;
        table
            .by_id
            .get(index)
            .filter(|m| m.container == container)
            .map(|m| m.value)
    }

    /// Prometheus text: one family per metric kind, the guest's name and the container as
    /// labels, so no guest can forge or collide with the proxy's own metric names.
    pub fn prometheus_text(&self) -> String {
        let table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut families: BTreeMap<&str, Vec<&Metric>> = BTreeMap::new();
        for metric in &table.by_id {
            let family = match metric.kind {
                MetricType::Counter => "hoody_hook_counter",
                MetricType::Gauge => "hoody_hook_gauge",
                MetricType::Histogram => "hoody_hook_histogram_last",
            };
            families.entry(family).or_default().push(metric);
        }
        let mut out = String::new();
        for (family, metrics) in families {
            let kind = if family == "hoody_hook_counter" {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for m in metrics {
                let _ = writeln!(
                    out,
                    "{family}{{container=\"{}\",name=\"{}\"}} {}",
                    escape_label(&m.container),
                    escape_label(&m.name),
                    m.value
                );
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_protects_against_lost_updates() {
        let data = SharedData::new(1024, 10);
        assert_eq!(data.set("c", b"k", b"1", 0), Status::Ok);
        let (_, cas) = data.get("c", b"k").expect("stored");
        assert_eq!(data.set("c", b"k", b"2", cas), Status::Ok);
        assert_eq!(data.set("c", b"k", b"3", cas), Status::CasMismatch);
        assert_eq!(data.get("c", b"k").map(|v| v.0), Some(b"2".to_vec()));
    }

    #[test]
    fn shared_data_is_per_container() {
        let data = SharedData::new(1024, 1);
        assert_eq!(data.set("a", b"k", b"1", 0), Status::Ok);
        assert!(data.get("b", b"k").is_none());
        assert_eq!(data.set("a", b"other", b"1", 0), Status::InternalFailure);
    }

    #[test]
    fn metrics_export_as_prometheus_text() {
        let metrics = Metrics::default();
        let id = metrics.define("c1", "hits \"x\"", MetricType::Counter);
        assert_eq!(metrics.define("c1", "hits \"x\"", MetricType::Counter), id);
        assert_eq!(metrics.update("c1", id, |v, _| *v += 3), Status::Ok);
        assert_eq!(metrics.update("c2", id, |v, _| *v += 3), Status::NotFound);
        let text = metrics.prometheus_text();
        assert!(text.contains("# TYPE hoody_hook_counter counter"));
        assert!(text.contains("hoody_hook_counter{container=\"c1\",name=\"hits \\\"x\\\"\"} 3"));
    }
}
