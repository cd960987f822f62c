//! Peak memory of the producer's ledger work at a given size: load a stored
//! generation of `--versions` versions, record a tenth as many new ones,
//! probe every version, prune a tenth, and encode the result for storing.
//! `--store spill` is the producer's bounded ledger (`etl_aws::ledger`);
//! `--store memory` is the whole-ledger-in-memory way (bytes, hash map,
//! encoded bytes) it replaced, as a baseline. Prints one JSON line with the
//! peak resident set (VmHWM) after the work. `make bench-ledger` runs it.

use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use chrono::{DateTime, Utc};
use etl_aws::ledger::{SpillLedger, DEFAULT_MEMORY_VERSIONS};
use etl_core::{write_ledger, Fingerprint, Ledger, VersionLedger};
use sha2::{Digest, Sha256};

fn fp(i: u64) -> Fingerprint {
    Sha256::digest(i.to_le_bytes())[..16]
        .try_into()
        .expect("16 bytes")
}

fn at(i: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + i as i64, 0).expect("in range")
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: u64 = arg("--versions")
        .unwrap_or_else(|| "1000000".into())
        .parse()?;
    let store = arg("--store").unwrap_or_else(|| "spill".into());
    let dir = tempfile::tempdir()?;

    // The stored generation, as the state table would hand it back.
    let mut entries: Vec<(Fingerprint, i64)> =
        (0..n).map(|i| (fp(i), at(i).timestamp_micros())).collect();
    entries.sort_unstable_by_key(|a| a.0);
    let stored = dir.path().join("generation");
    {
        let mut w = BufWriter::new(std::fs::File::create(&stored)?);
        write_ledger(&mut w, n, entries.drain(..).map(Ok))?;
        w.flush()?;
    }
    drop(entries);
    // Measure only the ledger's work: reset the peak.
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let base_rss = peak_rss_kib();

    let started = Instant::now();
    let new = n / 10;
    let (versions, encoded_bytes) = match store.as_str() {
        "spill" => {
            let mut l = SpillLedger::new(dir.path(), DEFAULT_MEMORY_VERSIONS);
            l.load(BufReader::new(std::fs::File::open(&stored)?))?;
            for i in n..n + new {
                l.insert(fp(i), at(i))?;
            }
            for i in 0..n + new {
                assert!(l.contains(&fp(i))?, "version {i}");
            }
            l.prune(at(n / 10))?;
            let enc = l.encode_to_file()?;
            (l.len(), enc.bytes)
        }
        "memory" => {
            let bytes = std::fs::read(&stored)?;
            let mut l = Ledger::decode(&bytes)?;
            drop(bytes);
            for i in n..n + new {
                l.insert(fp(i), at(i));
            }
            for i in 0..n + new {
                assert!(l.contains(&fp(i)), "version {i}");
            }
            l.prune(at(n / 10));
            let enc = l.encode();
            let _sha = hex::encode(Sha256::digest(&enc));
            (l.len() as u64, enc.len() as u64)
        }
        other => return Err(format!("--store spill|memory, not {other}").into()),
    };
    println!(
        "{{\"store\":\"{store}\",\"versions_loaded\":{n},\"versions_saved\":{versions},\"encoded_bytes\":{encoded_bytes},\"seconds\":{:.2},\"peak_rss_kib\":{},\"rss_before_kib\":{base_rss}}}",
        started.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
    Ok(())
}
