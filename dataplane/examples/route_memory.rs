//! Measures resident memory per route: builds a table of N single-host
//! units (default 100,000) and prints the RSS growth per route.
//!
//!   cargo run --release -p dataplane --example route_memory [N]

use dataplane::config::{ContainerUnit, Service, Settings, Snapshot};
use dataplane::RouteTable;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let units: Vec<ContainerUnit> = (0..n)
        .map(|i| ContainerUnit {
            id: format!("{i:024x}"),
            project: Some(format!("{:024x}", i / 10)),
            services: vec![Service {
                program: "http".into(),
                index: 3000,
                upstream: Some(format!(
                    "http://10.{}.{}.{}:3000",
                    i >> 16 & 255,
                    i >> 8 & 255,
                    i & 255
                )),
                hosts: vec![],
            }],
            aliases: vec![],
            proxy: None,
            firewall: vec![],
            modules: Default::default(),
        })
        .collect();
    let snapshot = Snapshot { units };
    let before = rss_bytes();
    let table = RouteTable::new(&Settings::default());
    if let Err(e) = table.replace_all(&snapshot) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let after = rss_bytes();
    drop(snapshot);
    println!(
        "{} routes: RSS +{} KiB, {:.0} bytes per route",
        table.len(),
        (after - before) / 1024,
        (after - before) as f64 / table.len() as f64
    );
}
