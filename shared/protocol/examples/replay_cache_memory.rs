//! How much memory the replay cache takes, and how fast it accepts nonces:
//! `cargo run --release -p ea-protocol --example replay_cache_memory -- [ENTRIES]`.
//!
//! Fills a cache with ENTRIES fresh nonces (default 4,000,000, the enclave's default
//! capacity) from a thousand principals, issued over the last minute, and prints the growth
//! of the process's resident memory (Linux `/proc/self/status`) and the insert rate.

use std::time::Instant;

use ea_protocol::signed::ReplayCache;

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000_000);
    let now: u64 = 1_800_000_000_000;
    let principals: Vec<String> = (0..1000).map(|i| format!("principal-{i}")).collect();
    let before = resident_kib();
    let mut cache = ReplayCache::new(usize::try_from(entries).unwrap_or(usize::MAX));
    let started = Instant::now();
    for i in 0..entries {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&i.to_le_bytes());
        let principal = principals
            .get(usize::try_from(i % 1000).unwrap_or(0))
            .map_or("p", String::as_str);
        // Issued over the last minute, in order, as a steady load would.
        let issued_at = now - 60_000 + i * 60_000 / entries;
        if let Err(error) = cache.check_and_insert(principal, &nonce, issued_at, now) {
            eprintln!("entry {i}: {error}");
            std::process::exit(1);
        }
    }
    let elapsed = started.elapsed();
    let grown = resident_kib().saturating_sub(before);
    println!(
        "{} nonces: {:.1} MiB resident ({:.0} bytes each), {:.2} M inserts/s",
        cache.len(),
        grown as f64 / 1024.0,
        (grown * 1024) as f64 / entries as f64,
        entries as f64 / elapsed.as_secs_f64() / 1e6
    );
}
