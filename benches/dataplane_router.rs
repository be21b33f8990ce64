//! Hot-path benches for the data plane: host lookup in a 100,000-route
//! table and one gate decision per group type.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use dataplane::config::{ContainerUnit, Delta, ProxyDocument, Service, Settings, Snapshot};
use dataplane::gate::{AccessGate, RequestFacts};
use dataplane::http::{self, HeaderMap};
use dataplane::RouteTable;

const ROUTES: usize = 100_000;

fn table() -> RouteTable {
    let t = RouteTable::new(&Settings::default());
    let units = (0..ROUTES)
        .map(|i| ContainerUnit {
            id: format!("c{i}"),
            project: None,
            services: vec![Service {
                program: "http".into(),
                index: 3000,
                upstream: Some("http://127.0.0.1:3000".into()),
                hosts: vec![format!("p0-c{i:06}-http-3000.local.localhost")],
            }],
            aliases: vec![],
            proxy: None,
            firewall: vec![],
            modules: Default::default(),
        })
        .collect();
    t.replace_all(&Snapshot { units }).expect("snapshot");
    t
}

fn lookup(c: &mut Criterion) {
    let t = table();
    let hosts: Vec<String> = (0..1024)
        .map(|i| format!("p0-c{:06}-http-3000.local.localhost", (i * 97) % ROUTES))
        .collect();
    let mut i = 0;
    c.bench_function("route_lookup_100k_hit", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(t.lookup(black_box(&hosts[i])))
        })
    });
    c.bench_function("route_lookup_100k_hit_with_port", |b| {
        b.iter(|| black_box(t.lookup(black_box("p0-c000042-http-3000.local.localhost:8000"))))
    });
    c.bench_function("route_lookup_100k_miss", |b| {
        b.iter(|| black_box(t.lookup(black_box("nope.local.localhost"))))
    });
    c.bench_function("route_apply_one_delta_at_100k", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            let unit = ContainerUnit {
                id: "c7".into(),
                project: None,
                services: vec![Service {
                    program: "http".into(),
                    index: 3000 + (n % 2),
                    upstream: Some("http://127.0.0.1:3000".into()),
                    hosts: vec!["p0-c000007-http-3000.local.localhost".into()],
                }],
                aliases: vec![],
                proxy: None,
                firewall: vec![],
                modules: Default::default(),
            };
            t.apply(&Delta::Upsert { unit }).expect("apply")
        })
    });
}

fn gate(c: &mut Criterion) {
    let client: SocketAddr = "10.1.2.3:40000".parse().expect("addr");
    // HS256 over {"role":"dev","exp":4000000000} with secret "k".
    let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiZGV2IiwiZXhwIjo0MDAwMDAwMDAwfQ.fdtRnQCAfWmJIRADjm_7-IUgRxskL53h5QvCVkvI6c8";
    // (name, group, request headers, query)
    type Case<'a> = (
        &'a str,
        serde_json::Value,
        Vec<(&'a str, String)>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("open", serde_json::Value::Null, vec![], None),
        (
            "ip",
            serde_json::json!({"type": "ip", "range": "10.0.0.0/8"}),
            vec![],
            None,
        ),
        (
            "token_header",
            serde_json::json!({"type": "token", "header": "x-key", "value": "s3cret-token"}),
            vec![("x-key", "s3cret-token".into())],
            None,
        ),
        (
            "token_param",
            serde_json::json!({"type": "token", "param": "key", "value": "s3cret-token"}),
            vec![],
            Some("a=1&key=s3cret-token"),
        ),
        (
            "password",
            serde_json::json!({"type": "password", "username": "ann", "password": "pw", "salt": "s"}),
            vec![("authorization", "Basic YW5uOnB3".into())],
            None,
        ),
        (
            "jwt_hs256",
            serde_json::json!({"type": "jwt", "secret": "k", "algorithm": "HS256", "sources": ["header:Authorization"], "claims": {"role": "dev"}}),
            vec![("authorization", format!("Bearer {jwt}"))],
            None,
        ),
    ];
    for (name, group, headers, query) in cases {
        let doc: Option<ProxyDocument> = (!group.is_null()).then(|| {
            serde_json::from_value(serde_json::json!({
                "groups": {"g": group}, "permissions": {"g": {"http": true}}, "default": "deny"
            }))
            .expect("doc")
        });
        let gate = AccessGate::compile(doc.as_ref(), &[]).expect("gate");
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_static(k),
                v.parse().expect("header value"),
            );
        }
        let facts = RequestFacts {
            client,
            headers: &h,
            query,
        };
        assert_eq!(
            gate.decide(&facts, "http", 3000),
            dataplane::gate::Decision::Allow,
            "{name}"
        );
        c.bench_function(&format!("gate_decision_{name}"), |b| {
            b.iter(|| black_box(gate.decide(black_box(&facts), "http", 3000)))
        });
    }
}

criterion_group!(benches, lookup, gate);
criterion_main!(benches);
