//! Quick env throughput probe: `cargo run --release --no-default-features --example env_speed -- 4096 index`.
use ploutos::config::{EnvironmentConfig, ObservationLayout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let layout = match args.get(2).map(String::as_str) {
        Some("index") => ObservationLayout::Index,
        _ => ObservationLayout::Materialized,
    };
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cfg = EnvironmentConfig { observation_layout: layout, ..Default::default() };
    let r = ploutos::bench::measure_env(&cfg, ploutos::bench::bench_market(10), n, threads, 3.0).expect("env");
    println!("{}", serde_json::to_string(&r).unwrap());
}
