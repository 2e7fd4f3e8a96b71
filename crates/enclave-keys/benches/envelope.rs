//! Envelope throughput against raw aws-lc-rs AES-256-GCM, at 1 KiB and 1 MiB.
//!
//! Four operations per size:
//! * `DataKey::seal` vs raw `LessSafeKey::seal_in_place_append_tag` (a `Vec` of the final
//!   size, plaintext copied in, random nonce, sealed in place);
//! * `DataKey::open` (result in `Zeroizing<Vec<u8>>`, zeroized when dropped) vs raw
//!   `LessSafeKey::open_in_place` (the ciphertext copied into a new `Vec`, opened in place,
//!   the buffer dropped);
//! * `DataKey::open_in_place` (the ciphertext copied into a new `Vec`, opened in place) vs
//!   the same raw open;
//! * a reference row, `raw+zeroize`: the raw open with its result wrapped in `Zeroizing`, to
//!   show what zeroization on drop costs by itself.
//!
//! Both sides do what a caller holding `&[u8]` input must do: allocate an output, draw a
//! nonce, encrypt. The envelope adds its header, the context in the associated data and
//! (for `open`) zeroization of the plaintext buffer when it is dropped.
//!
//! The two sides of a pair are measured in alternating rounds so that background load hits
//! both alike; each figure is the median over rounds, and the ratio is envelope / raw
//! throughput. Criterion-style flags are accepted:
//! `cargo bench -p enclave-keys --bench envelope -- --warm-up-time 1 --measurement-time 3`.
//! A JSON summary is printed last and written to `$BENCH_OUT` when set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use enclave_keys::{DataKey, KeyMaterial};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const CONTEXT: &[u8] = b"file:prj_0123456789:fil_0123456789:1";

struct Args {
    warm_up: Duration,
    measurement: Duration,
}

fn args() -> Args {
    let mut a = Args {
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(3),
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let secs = || -> Duration {
            let v: f64 = argv
                .get(i + 1)
                .and_then(|s| s.parse().ok())
                .expect("a number of seconds");
            Duration::from_secs_f64(v)
        };
        match argv[i].as_str() {
            "--warm-up-time" => {
                a.warm_up = secs();
                i += 1;
            }
            "--measurement-time" => {
                a.measurement = secs();
                i += 1;
            }
            _ => {} // --bench and anything else cargo passes
        }
        i += 1;
    }
    a
}

/// Runs `f` repeatedly for about `d`; returns seconds per call.
fn run_for(d: Duration, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut batch: u64 = 1;
    loop {
        for _ in 0..batch {
            f();
        }
        n += batch;
        let el = start.elapsed();
        if el >= d {
            return el.as_secs_f64() / n as f64;
        }
        if el < d / 10 {
            batch *= 2;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Alternating rounds of `a` and `b`; returns median seconds per call of each.
fn pair(args: &Args, a: &mut dyn FnMut(), b: &mut dyn FnMut()) -> (f64, f64) {
    run_for(args.warm_up / 2, a);
    run_for(args.warm_up / 2, b);
    let slice = args.measurement / (2 * ROUNDS as u32);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            ta.push(run_for(slice, a));
            tb.push(run_for(slice, b));
        } else {
            tb.push(run_for(slice, b));
            ta.push(run_for(slice, a));
        }
    }
    (median(ta), median(tb))
}

fn nonce() -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut n).unwrap();
    Nonce::assume_unique_for_key(n)
}

struct Row {
    size: usize,
    op: &'static str,
    envelope_s: f64,
    raw_s: f64,
}

fn main() {
    let args = args();
    let material = KeyMaterial::generate().unwrap();
    let dk = DataKey::new("project:prj_0123456789", 1, &material).unwrap();
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material.as_bytes()).unwrap());

    let mut rows = Vec::new();
    for size in [1024usize, 1 << 20] {
        let pt: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();

        let (env, rawt) = pair(
            &args,
            &mut || {
                black_box(dk.seal(black_box(CONTEXT), black_box(&pt)).unwrap());
            },
            &mut || {
                let mut buf = Vec::with_capacity(size + AES_256_GCM.tag_len());
                buf.extend_from_slice(black_box(&pt));
                raw.seal_in_place_append_tag(nonce(), Aad::from(black_box(CONTEXT)), &mut buf)
                    .unwrap();
                black_box(buf);
            },
        );
        rows.push(Row {
            size,
            op: "seal",
            envelope_s: env,
            raw_s: rawt,
        });

        let env_ct = dk.seal(CONTEXT, &pt).unwrap();
        let raw_nonce = [9u8; NONCE_LEN];
        let mut raw_ct = pt.clone();
        raw.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(raw_nonce),
            Aad::from(CONTEXT),
            &mut raw_ct,
        )
        .unwrap();
        let raw_open = || {
            let mut buf = black_box(&raw_ct).to_vec();
            let n = raw
                .open_in_place(
                    Nonce::assume_unique_for_key(raw_nonce),
                    Aad::from(black_box(CONTEXT)),
                    &mut buf,
                )
                .unwrap()
                .len();
            buf.truncate(n);
            buf
        };
        let (env, rawt) = pair(
            &args,
            &mut || {
                let p = dk.open(black_box(CONTEXT), black_box(&env_ct)).unwrap();
                black_box(p.len());
            },
            &mut || {
                black_box(raw_open());
            },
        );
        rows.push(Row {
            size,
            op: "open",
            envelope_s: env,
            raw_s: rawt,
        });
        let (env, rawt) = pair(
            &args,
            &mut || {
                let mut buf = black_box(&env_ct).to_vec();
                let n = dk
                    .open_in_place(black_box(CONTEXT), &mut buf)
                    .unwrap()
                    .len();
                black_box(n);
                black_box(buf);
            },
            &mut || {
                black_box(raw_open());
            },
        );
        rows.push(Row {
            size,
            op: "open_in_place",
            envelope_s: env,
            raw_s: rawt,
        });
        // Reference: raw open whose result is wrapped in `Zeroizing` (what `open` returns),
        // to show how much of `open`'s cost is zeroization on drop.
        let (env, rawt) = pair(
            &args,
            &mut || {
                let p = zeroize::Zeroizing::new(raw_open());
                black_box(p.len());
            },
            &mut || {
                black_box(raw_open());
            },
        );
        rows.push(Row {
            size,
            op: "raw+zeroize",
            envelope_s: env,
            raw_s: rawt,
        });
    }

    let mib = |size: usize, s: f64| size as f64 / s / (1024.0 * 1024.0);
    println!(
        "\n{:<6} {:<13} {:>12} {:>12} {:>12} {:>12} {:>7}",
        "size", "op", "envelope", "raw", "env MiB/s", "raw MiB/s", "ratio"
    );
    let mut json = Vec::new();
    for r in &rows {
        let label = if r.size >= 1 << 20 { "1 MiB" } else { "1 KiB" };
        let ratio = r.raw_s / r.envelope_s;
        println!(
            "{:<6} {:<13} {:>10.2}µs {:>10.2}µs {:>12.0} {:>12.0} {:>6.3}×",
            label,
            r.op,
            r.envelope_s * 1e6,
            r.raw_s * 1e6,
            mib(r.size, r.envelope_s),
            mib(r.size, r.raw_s),
            ratio
        );
        json.push(format!(
            "{{\"size\":{},\"op\":\"{}\",\"envelope_us\":{:.3},\"raw_us\":{:.3},\"envelope_mib_s\":{:.1},\"raw_mib_s\":{:.1},\"ratio\":{:.3}}}",
            r.size,
            r.op,
            r.envelope_s * 1e6,
            r.raw_s * 1e6,
            mib(r.size, r.envelope_s),
            mib(r.size, r.raw_s),
            ratio
        ));
    }
    let summary = format!("{{\"bench\":\"envelope\",\"rows\":[{}]}}", json.join(","));
    println!("{summary}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, &summary).unwrap();
    }
}
