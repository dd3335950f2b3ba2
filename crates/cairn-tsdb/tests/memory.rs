//! Heap bytes per active series, counted by a global allocator wrapper.
//! Ignored by default (it wants a release build):
//! `cargo test --release -p cairn-tsdb --test memory -- --ignored --nocapture`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_model::{Labels, Sample, SeriesSamples};
use cairn_tsdb::{Tsdb, TsdbOptions};

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
#[ignore]
fn bytes_per_active_series() {
    let tmp = tempfile::tempdir().unwrap();
    let series_count = 20_000usize;
    // 75 minutes at 15 s: two closed chunks and a half-full open one.
    let scrapes = 300;
    let labels: Vec<Labels> = (0..series_count)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", &format!("metric_{}", i % 100)),
                (
                    "instance",
                    &format!("10.0.{}.{}:9100", i / 250 % 250, i % 250),
                ),
                ("job", "node"),
                ("cluster", "gpu-east-1"),
                ("namespace", &format!("team-{}", i % 20)),
                ("pod", &format!("worker-{}", i / 10)),
                ("gpu", &(i % 8).to_string()),
            ])
        })
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let mut counters = vec![0f64; series_count];
    for scrape in 0..scrapes {
        let t = 1_700_000_000_000 + scrape * 15_000 + (scrape % 3);
        for (first, chunk) in labels.chunks(1000).enumerate() {
            let batch: Vec<SeriesSamples> = chunk
                .iter()
                .enumerate()
                .map(|(k, l)| {
                    let i = first * 1000 + k;
                    // A counter growing by an irregular amount.
                    counters[i] += ((i * 7 + scrape as usize * 13) % 101) as f64;
                    SeriesSamples {
                        labels: l.clone(),
                        samples: vec![Sample::new(t, counters[i])],
                        exemplars: Vec::new(),
                    }
                })
                .collect();
            db.append(batch).unwrap();
        }
    }
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    let per_series = (after - before) / series_count;
    let chunk_bytes = db.head_chunk_bytes() as usize / series_count;
    println!(
        "live heap grew {} KiB: {per_series} bytes per series ({scrapes} samples each), \
         of which {chunk_bytes} bytes of chunk data",
        (after - before) >> 10
    );
    assert!(per_series < 2048, "{per_series} bytes per series");
}
