//! In-process figures for the work hookbridge does on each body besides HTTP and Kafka, on the
//! harness's own bodies (bench/README.md): the signature check, the typed parse and the Avro
//! encoding, each beside the bare floor it is measured against, in one run:
//!
//! - `json validate`: one validating serde_json pass over the body, the least any parse costs;
//! - `parse`: `SendbirdEvent::parse_str`, the typed view the record is written from;
//! - `encode`: the record value (Confluent framing and the Avro datum) from the parsed view;
//! - `hmac`: HMAC-SHA256 of the body, which every contender pays.
//!
//!     cargo run --release --example bench-micro -- [--seconds 2]
//!
//! It prints nanoseconds per body and the ratio of each step to one validating pass. Absolute
//! figures vary by machine; the ratios carry over.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use hmac::{Hmac, Mac};
use hookbridge::providers::sendbird::{EventEncoder, EventRecord, SendbirdEvent};
use serde::de::IgnoredAny;
use sha2::Sha256;

#[path = "../common.rs"]
mod common;

// The gateway's allocator, so allocation costs what it costs there.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Per-body CPU cost of parse, encode and signature check")]
struct Args {
    /// Seconds each step is timed for, per body set.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Only this body set (default: all).
    #[arg(long, value_enum)]
    body: Option<common::BodySet>,
}

/// Runs `step` over the bodies (with each one's index) round-robin for about `budget`;
/// nanoseconds per call.
fn time(budget: Duration, bodies: &[&str], mut step: impl FnMut(usize, &str)) -> f64 {
    // A short warm-up, so caches and the allocator's pools are in place.
    for (i, body) in bodies.iter().enumerate().take(64) {
        step(i, body);
    }
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < budget {
        for (i, body) in bodies.iter().enumerate() {
            step(i, body);
        }
        calls += bodies.len() as u64;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let args = Args::parse();
    let budget = Duration::from_secs_f64(args.seconds);
    let encoder = EventEncoder::new().expect("the Sendbird schema parses");
    let mac = Hmac::<Sha256>::new_from_slice(b"bench-micro-token").expect("HMAC takes any key");

    println!(
        "{:<6} {:<14} {:>12} {:>10} {:>14}",
        "body", "step", "ns/body", "MB/s", "x validate"
    );
    let sets = [
        common::BodySet::Small,
        common::BodySet::Large256k,
        common::BodySet::Large2m,
    ];
    for set in sets
        .into_iter()
        .filter(|s| args.body.is_none_or(|b| b == *s))
    {
        let owned = common::bodies(set, "bench-micro-token");
        let bodies: Vec<&str> = owned
            .iter()
            .map(|b| std::str::from_utf8(&b.bytes).expect("bodies are UTF-8"))
            .collect();
        let events: Vec<SendbirdEvent> = bodies
            .iter()
            .map(|b| SendbirdEvent::parse_str(b, 1000).expect("bodies parse"))
            .collect();

        let validate = time(budget, &bodies, |_, b| {
            black_box(serde_json::from_str::<IgnoredAny>(black_box(b)).is_ok());
        });
        let parse = time(budget, &bodies, |_, b| {
            black_box(SendbirdEvent::parse_str(black_box(b), 1000).is_ok());
        });
        let encode = time(budget, &bodies, |i, b| {
            let record = EventRecord {
                event_id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                app_id: common::APP_ID,
                received_at_ms: 1_718_000_700_123,
                raw_body: b,
                event: &events[i],
            };
            black_box(encoder.encode(1, black_box(&record)));
        });
        let hmac = time(budget, &bodies, |_, b| {
            let mut m = mac.clone();
            m.update(black_box(b.as_bytes()));
            black_box(m.finalize());
        });
        let bytes = set.body_bytes() as f64;
        for (step, ns) in [
            ("json validate", validate),
            ("parse", parse),
            ("encode", encode),
            ("hmac", hmac),
        ] {
            println!(
                "{:<6} {:<14} {:>12.0} {:>10.0} {:>14.2}",
                set.name(),
                step,
                ns,
                bytes / ns * 1e3,
                ns / validate
            );
        }
    }
}
