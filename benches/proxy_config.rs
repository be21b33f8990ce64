//! The config compiler and its path to the proxy.
//!
//! - `compile/project_1000_containers`: records → units for one project of
//!   1,000 containers (each with an alias and two ingress rules), read from
//!   the store, then applied to a data plane as one snapshot: the work of a
//!   server start.
//! - `compile/one_container`: one container's recompile (store reads, unit
//!   build, apply), the work behind every API write that touches routing.
//! - write → enforced (printed, not a criterion group): the real API and the
//!   real proxy on loopback in one process; each of 100 changes flips an
//!   alias with `proxyAliases.setState` and the clock stops at the first
//!   proxy answer showing the new state. p50 / p99 are printed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use control::aliases::model::{self as aliases, Alias};
use control::containers::model::{self as containers, Container};
use control::settings::Settings;
use control::state::AppState;
use control::store::Store;
use criterion::Criterion;
use serde_json::json;

const PROJECT: &str = "65f0000000000000000000bb";

fn container(i: usize) -> Container {
    let id = format!("65f00000000000000{i:07x}");
    serde_json::from_value(json!({
        "id": id, "user_id": "65f0000000000000000000aa", "project_id": PROJECT,
        "server_id": "65f0000000000000000000cc", "name": format!("c{i}"), "color": "#123456",
        "container_image": "busybox", "ai": false, "hoody_kit": false, "dev_kit": false,
        "kvm": false, "autostart": true, "ramdisk_scope": "container", "ramdisk": false,
        "status": "running", "environment_vars": {}, "volumes": {}, "ssh_public_key": null,
        "comment": null, "source_container_id": null, "realm_ids": [],
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "firewall": {"ingress": [
            {"action": "allow", "protocol": "tcp", "source": "10.0.0.0/8", "destination_port": "80", "state": "enabled"},
            {"action": "reject", "protocol": "tcp", "destination_port": "1-65535", "state": "enabled"}
        ], "egress": []}
    }))
    .expect("container JSON")
}

fn alias(c: &Container, i: usize) -> Alias {
    Alias {
        id: format!("65f00000000000001{i:07x}"),
        user_id: c.user_id.clone(),
        project_id: c.project_id.clone(),
        container_id: c.id.clone(),
        server_id: c.server_id.clone(),
        alias: format!("app-{i}"),
        program: "http".into(),
        index: 3000,
        target_path: Some("/app".into()),
        allow_path_override: true,
        expires_at: None,
        enabled: true,
        created_at: c.created_at.clone(),
        updated_at: c.created_at.clone(),
    }
}

fn project_store(n: usize) -> (Store, Vec<Container>) {
    let store = Store::temporary().expect("store");
    let all: Vec<Container> = (0..n).map(container).collect();
    for (i, c) in all.iter().enumerate() {
        store
            .tx(|tx| {
                containers::insert(tx, c)?;
                aliases::put(tx, &alias(c, i), None)
            })
            .expect("insert");
    }
    (store, all)
}

fn address(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 214, (i / 250) as u8, (i % 250 + 2) as u8)
}

fn compile(c: &mut Criterion) {
    let (store, all) = project_store(1000);
    let dataplane = dataplane::DataPlane::new(Default::default());
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("project_1000_containers", |b| {
        b.iter(|| {
            let units = all
                .iter()
                .enumerate()
                .map(|(i, c)| control::proxy::compile::unit_for(&store, c, Some(address(i))))
                .collect::<Result<Vec<_>, _>>()
                .expect("compile");
            dataplane
                .replace_all(&dataplane::Snapshot { units })
                .expect("apply")
        })
    });
    group.bench_function("one_container", |b| {
        b.iter(|| {
            let unit = control::proxy::compile::unit_for(&store, &all[0], Some(address(0)))
                .expect("compile");
            dataplane
                .apply(&dataplane::Delta::Upsert { unit })
                .expect("apply")
        })
    });
    group.finish();
}

/// The real API and proxy in this process; returns (api, proxy) addresses.
async fn serve(state: &AppState) -> (SocketAddr, SocketAddr) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind api");
    let api_addr = api.local_addr().expect("api addr");
    let service = control::app::service(state.clone());
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(service);
    tokio::spawn(async move { axum::serve(api, make).await });
    let listener = state
        .dataplane
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind proxy");
    let proxy_addr = listener.local_addr();
    let dp = state.dataplane.clone();
    tokio::spawn(async move { dp.serve(vec![listener], std::future::pending()).await });
    (api_addr, proxy_addr)
}

fn write_to_enforced() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("hoody-bench-{}", std::process::id()));
        let mut settings = Settings::for_data_dir(&dir);
        settings.rate.per_token_per_min = u32::MAX;
        let state =
            AppState::with_store(settings, Store::temporary().expect("store")).expect("state");
        let user = control::auth::service::create_verified_user(
            &state,
            "bench@example.test",
            "Correct-Horse-9!",
            false,
        )
        .expect("user");
        let mut c = container(0);
        c.user_id = user.id.clone();
        c.project_id = user.default_project_id.clone().expect("default project");
        c.server_id = control::servers::model::node_server_id("local");
        // The compile fixture's reject-all ingress rule would answer 403 to
        // every state; this measurement wants the alias state to decide.
        c.firewall = Default::default();
        // Without a runtime the container has no address: an enabled alias
        // answers 503, a disabled one 404. Either way the proxy decides
        // from the unit the write just published.
        state
            .store
            .tx(|tx| containers::insert(tx, &c))
            .expect("container");
        let (api, proxy) = serve(&state).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let login: serde_json::Value = client
            .post(format!("http://{api}/api/v1/users/auth/login"))
            .json(&json!({"email": "bench@example.test", "password": "Correct-Horse-9!"}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON");
        let token = login["data"]["token"].as_str().expect("token").to_string();
        let created: serde_json::Value = client
            .post(format!("http://{api}/api/v1/proxy/aliases"))
            .bearer_auth(&token)
            .json(&json!({"container_id": c.id, "alias": "bench", "program": "http"}))
            .send()
            .await
            .expect("create alias")
            .json()
            .await
            .expect("alias JSON");
        let id = created["data"]["id"]
            .as_str()
            .expect("alias id")
            .to_string();
        let mut samples = Vec::with_capacity(100);
        for i in 0..100 {
            let enabled = i % 2 == 1;
            let want = if enabled { 503 } else { 404 };
            let start = Instant::now();
            let resp = client
                .patch(format!("http://{api}/api/v1/proxy/aliases/{id}/state"))
                .bearer_auth(&token)
                .json(&json!({"enabled": enabled}))
                .send()
                .await
                .expect("setState");
            assert!(resp.status().is_success(), "setState: {}", resp.status());
            loop {
                let status = client
                    .get(format!("http://{proxy}/"))
                    .header("host", "bench.local.localhost")
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .expect("proxy")
                    .status()
                    .as_u16();
                if status == want {
                    break;
                }
            }
            samples.push(start.elapsed());
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
        println!(
            "write_to_enforced/in_process (100 changes): p50 {:?}  p99 {:?}  max {:?}",
            at(0.50),
            at(0.99),
            samples[samples.len() - 1]
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    compile(&mut c);
    c.final_summary();
    write_to_enforced();
}
