//! `containers.getStats`: the runtime's figures in the contract's shape.

use serde_json::{json, Value};

use super::model::Container;
use crate::error::ApiResult;
use crate::projects::model::Project;
use crate::servers::model::SERVERS;
use crate::state::AppState;

/// The status codes clients know from LXD-style APIs.
fn status_code(status: &str) -> u16 {
    match status {
        "running" => 103,
        "stopped" => 102,
        "paused" => 110,
        "failed" => 400,
        _ => 106,
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 10000.0).round() / 100.0
    }
}

/// Live stats of one container; a container the runtime cannot report on
/// (being created, failed) answers with its status and empty figures.
pub async fn of(state: &AppState, c: &Container, project: &Project) -> ApiResult<Value> {
    let started = std::time::Instant::now();
    let server = state.store.get(&SERVERS, &c.server_id)?;
    let mut out = json!({
        "id": c.id,
        "project_id": c.project_id,
        "project_name": project.alias,
        "server_name": server.as_ref().map(|s| s.name.clone()),
        "status": c.status,
        "status_code": status_code(&c.status),
        "processes": 0,
        "started_at": c.started_at.clone().unwrap_or_default(),
        "cpu": null,
        "memory": null,
        "disk": {"root": {"usage": 0}},
        "network": [],
    });
    let stats = match state.runtime()?.stats(&c.id).await {
        Ok(s) => Some(s),
        Err(runtime::RuntimeError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(s) = stats {
        let status = super::service::status_of(s.status);
        let uptime_ns = c
            .started_at
            .as_deref()
            .and_then(crate::wire::parse_time)
            .map(|t| {
                (time::OffsetDateTime::now_utc() - t)
                    .whole_nanoseconds()
                    .max(0) as u64
            })
            .unwrap_or(0);
        let cores = s
            .cpu_limit_millicores
            .map(|m| m as f64 / 1000.0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as f64)
                    .unwrap_or(1.0)
            });
        let cpu_percent = if uptime_ns == 0 {
            0.0
        } else {
            ((s.cpu_usage_ns as f64 / (uptime_ns as f64 * cores)) * 10000.0).round() / 100.0
        };
        let total = s.memory.limit.unwrap_or_else(host_memory);
        let n = &s.network;
        out["status"] = json!(status);
        out["status_code"] = json!(status_code(status));
        out["processes"] = json!(s.processes);
        out["cpu"] = json!({
            "usage": s.cpu_usage_ns,
            "allocated_time": s.cpu_limit_millicores.map(|m| m * 100_000 / 1000),
            "usage_percent": cpu_percent,
        });
        out["memory"] = json!({
            "usage": s.memory.usage,
            "total": total,
            "usage_percent": percent(s.memory.usage, total),
            "usage_peak": s.memory.peak,
            "swap_usage": 0,
            "swap_usage_peak": 0,
        });
        out["disk"] = json!({"root": {"usage": s.disk_usage}});
        out["network"] = json!([{
            "interface": n.interface,
            "addresses": [{
                "address": n.address.to_string(),
                "family": "inet",
                "netmask": n.prefix_len.to_string(),
                "scope": "global",
            }],
            "counters": n.counters,
            "state": n.state,
            "type": "broadcast",
        }]);
    }
    out["processing_time"] = json!(format!("{}ms", started.elapsed().as_millis()));
    Ok(out)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
