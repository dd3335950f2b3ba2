//! Where the storage benchmark's bytes go: builds the benchmark's 24h
//! blocks in-process from the same generator as `cairn-bench history`
//! (`node` workload, 1,000 series, 48 h at 15 s: the same formulas and the
//! same draws in the same order) with the block writer compaction uses, and
//! breaks each file down (index sections, chunk framing, dense chunk
//! headers, column tables, coded values against each value kind's entropy).
//! A figure, not a check:
//! `cargo test --release -p cairn-tsdb --lib -- --ignored --nocapture storage_breakdown`.

use std::collections::BTreeMap;

use cairn_model::{Label, Labels};

use super::index::IndexReader;
use super::writer::{write_block, BlockSeries, NewBlock};
use super::Decbuf;
use crate::chunk::{dense, ClosedChunk, XorAppender, ENCODING_DENSE};

const SERIES: usize = 1000;
const HOURS: i64 = 48;
const STEP: i64 = 15_000;
const DAY: i64 = 86_400_000;
/// A UTC midnight (the script starts at one, four days ago).
const START: i64 = 20_416 * DAY;

/// `cairn-bench history`'s `series_labels`.
fn series_labels(s: usize) -> Labels {
    let host = s / 100;
    let metric = s % 100;
    let name = if metric.is_multiple_of(2) {
        format!("node_metric_{metric}_total")
    } else {
        format!("node_gauge_{metric}")
    };
    Labels::new(vec![
        Label::new("__name__", name),
        Label::new("cluster", format!("gpu-{}", host % 4)),
        Label::new(
            "instance",
            format!("10.0.{}.{}:9100", host / 250, host % 250),
        ),
        Label::new("job", "node"),
    ])
}

/// Entropy of one value, bits, by kind (`s % 100 % 6`): uniform steps of
/// round(1500 u) (1501 values, the ends half as likely), page multiples
/// round(256 (u - 1/2)) (257 values, likewise), byte steps round(1e6 u),
/// a constant, +1 with p = 0.01, round(400 u) (401 values).
fn kind_entropy(kind: usize) -> f64 {
    let rounded_uniform = |n: f64| (n - 1.0) / n * n.log2() + (1.0 / n) * (2.0 * n).log2();
    match kind {
        0 => rounded_uniform(1500.0),
        1 => rounded_uniform(256.0),
        2 => rounded_uniform(1e6),
        3 => 0.0,
        4 => -(0.01f64 * 0.01f64.log2() + 0.99 * 0.99f64.log2()),
        _ => rounded_uniform(400.0),
    }
}

fn kind_of(labels: &Labels) -> usize {
    let name = labels.metric_name().expect("named");
    let metric: usize = name
        .trim_start_matches("node_metric_")
        .trim_start_matches("node_gauge_")
        .trim_end_matches("_total")
        .parse()
        .expect("metric number");
    metric % 6
}

/// The generator's samples, one day at a time, as the head's XOR chunks.
struct Generator {
    state: Vec<f64>,
    rng: u64,
    t: i64,
}

impl Generator {
    fn new() -> Generator {
        Generator {
            state: (0..SERIES)
                .map(|s| match s % 100 % 6 {
                    1 => 8_000_000_000.0,
                    3 => 500_107_862_016.0,
                    _ => 0.0,
                })
                .collect(),
            rng: 0x2545_f491_4f6c_dd1d,
            t: START,
        }
    }

    fn day(&mut self) -> Vec<Vec<ClosedChunk>> {
        let end = self.t + DAY;
        let mut chunks: Vec<Vec<ClosedChunk>> = vec![Vec::new(); SERIES];
        let mut open: Vec<(XorAppender, i64)> =
            (0..SERIES).map(|_| (XorAppender::new(), 0)).collect();
        while self.t < end {
            for s in 0..SERIES {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let draw = (self.rng >> 16) as f64 / (1u64 << 48) as f64;
                let v = &mut self.state[s];
                match s % 100 % 6 {
                    0 => *v = ((*v + 15.0 * draw) * 100.0).round() / 100.0,
                    2 => *v += (draw * 1_000_000.0).round(),
                    4 => *v += if draw < 0.01 { 1.0 } else { 0.0 },
                    1 => *v = 8_000_000_000.0 + ((draw - 0.5) * 256.0).round() * 4096.0,
                    3 => {}
                    _ => *v = (draw * 400.0).round() / 100.0,
                }
                // Text exposition round trip, as import parses it.
                let v: f64 = format!("{v}").parse().expect("a float");
                let (appender, min_t) = &mut open[s];
                if appender.sample_count() == 0 {
                    *min_t = self.t;
                }
                appender.append(self.t, v);
                if appender.sample_count() == 120 {
                    let done = std::mem::take(appender);
                    chunks[s].push(ClosedChunk {
                        min_t: *min_t,
                        max_t: self.t,
                        data: done.into_bytes().into(),
                    });
                }
            }
            self.t += STEP;
        }
        for (s, (appender, min_t)) in open.into_iter().enumerate() {
            if appender.sample_count() > 0 {
                let max_t = appender.last().expect("a sample").0;
                chunks[s].push(ClosedChunk {
                    min_t,
                    max_t,
                    data: appender.into_bytes().into(),
                });
            }
        }
        chunks
    }
}

#[derive(Default)]
struct Totals {
    parts: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, part: &str, bytes: u64) {
        *self.parts.entry(part.to_string()).or_default() += bytes;
    }
}

/// Index sections of a version-2 or -3 file, bytes.
fn index_sections(bytes: &[u8], totals: &mut Totals) {
    totals.add("index: all", bytes.len() as u64);
    if let Some(sections) = super::index::sections(bytes) {
        for (name, len) in sections {
            totals.add(&format!("index: {name}"), len as u64);
        }
    }
}

#[test]
#[ignore]
fn storage_breakdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut generator = Generator::new();
    let mut totals = Totals::default();
    let mut samples = 0u64;
    let mut kind_samples = [0u64; 6];
    let mut kind_payload = [0u64; 6];
    let mut kind_total = [0u64; 6];
    let mut modes: BTreeMap<(usize, u8), u64> = BTreeMap::new();
    for day in 0..HOURS / 24 {
        let chunks = generator.day();
        let mut series: Vec<BlockSeries> = chunks
            .into_iter()
            .enumerate()
            .map(|(s, chunks)| BlockSeries {
                labels: series_labels(s),
                chunks,
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let min_time = START + day * DAY;
        let meta = write_block(
            dir.path(),
            series.into_iter().map(Ok),
            NewBlock {
                min_time,
                max_time: min_time + DAY,
                level: 3,
                sources: vec!["x".into()],
                imported: true,
                head_end: None,
            },
        )
        .unwrap();
        samples += meta.stats.num_samples;
        let block = dir.path().join(&meta.ulid);
        let meta_len = std::fs::metadata(block.join("meta.json")).unwrap().len();
        totals.add("meta.json", meta_len);
        let index_bytes = std::fs::read(block.join("index")).unwrap();
        index_sections(&index_bytes, &mut totals);
        let index = IndexReader::open(&block.join("index"), true).unwrap();
        let mut segments = BTreeMap::new();
        for entry in std::fs::read_dir(block.join("chunks")).unwrap() {
            let entry = entry.unwrap();
            let number: u64 = entry.file_name().to_str().unwrap().parse().unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            totals.add("chunks: segment headers", super::writer::CHUNKS_HEADER_LEN);
            totals.add("chunks: all", bytes.len() as u64);
            segments.insert(number, bytes);
        }
        for position in 0..index.len() as u32 {
            let s = index.series(position).unwrap();
            let kind = kind_of(&s.labels);
            for c in &s.chunks {
                let mut dense_header_in_index = 0u64;
                let segment = &segments[&c.segment];
                let mut d = Decbuf::new(segment);
                d.pos = c.offset as usize;
                let len = d.uvarint().unwrap() as usize;
                let encoding = d.u8().unwrap();
                let data = d.take(len).unwrap();
                totals.add(
                    "chunks: framing (len, encoding, crc)",
                    (d.pos - c.offset as usize + 4 - len) as u64,
                );
                kind_samples[kind] += c.samples;
                kind_total[kind] += data.len() as u64;
                // A dense chunk's flags byte in the encoding byte (counted
                // in the framing above) or in the data.
                let (dense, flags_in_encoding): (Vec<u8>, usize) =
                    if encoding >= super::writer::ENCODING_DENSE_FLAGS {
                        let flags = encoding - super::writer::ENCODING_DENSE_FLAGS;
                        let mut prefix = vec![flags];
                        if flags & dense::FLAG_ZSTD == 0 {
                            // The sample count is the chunk meta's.
                            super::put_uvarint(&mut prefix, c.samples);
                            dense_header_in_index += prefix.len() as u64 - 1;
                        }
                        ([&prefix, data].concat(), 1)
                    } else if encoding == ENCODING_DENSE {
                        (data.to_vec(), 0)
                    } else {
                        totals.add("chunks: xor chunk bytes", len as u64);
                        continue;
                    };
                let l = dense::layout(&dense).unwrap();
                totals.add(
                    "chunks: dense flags/frame",
                    (l.frame - flags_in_encoding) as u64,
                );
                totals.add(
                    "chunks: dense header (n, scale, exceptions)",
                    l.header as u64 - std::mem::take(&mut dense_header_in_index),
                );
                totals.add("chunks: timestamp column", l.ts_column as u64);
                totals.add("chunks: value column header", l.value_header as u64);
                totals.add("chunks: value column table", l.value_table as u64);
                totals.add("chunks: value coder states", l.value_states as u64);
                totals.add("chunks: value payload", l.value_payload as u64);
                totals.add("chunks: exceptions", l.exceptions as u64);
                if l.zstd_saved != 0 {
                    totals.add("chunks: zstd saving (subtract)", l.zstd_saved as u64);
                }
                kind_payload[kind] += l.value_payload as u64 + l.value_states as u64;
                *modes.entry((kind, l.value_mode)).or_default() += 1;
            }
        }
    }
    let all: u64 = ["index: all", "chunks: all", "meta.json"]
        .iter()
        .map(|k| totals.parts.get(*k).copied().unwrap_or(0))
        .sum();
    println!(
        "{samples} samples, {all} bytes, {:.4} bytes/sample",
        all as f64 / samples as f64
    );
    for (part, bytes) in &totals.parts {
        println!(
            "  {part:<48} {bytes:>10} {:.5} B/sample",
            *bytes as f64 / samples as f64
        );
    }
    let mut bound = 0.0;
    for kind in 0..6 {
        let entropy = kind_entropy(kind);
        bound += entropy * kind_samples[kind] as f64 / 8.0;
        println!(
            "  kind {kind}: entropy {entropy:.4} bits, payload+states {:.4} bits, whole chunk {:.4} bits/sample",
            kind_payload[kind] as f64 * 8.0 / kind_samples[kind] as f64,
            kind_total[kind] as f64 * 8.0 / kind_samples[kind] as f64,
        );
    }
    println!("  value column modes (kind, mode): chunks {modes:?}");
    println!(
        "  entropy bound of the values: {:.0} bytes, {:.5} B/sample; everything else {:.5} B/sample",
        bound,
        bound / samples as f64,
        (all as f64 - bound) / samples as f64
    );
}
