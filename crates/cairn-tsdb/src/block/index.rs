//! The block `index` file: symbols, series with chunk references, postings.
//! Byte layout: `docs/format.md`, "Blocks" / "index".

use std::collections::{BTreeMap, BTreeSet};

use cairn_model::{Label, Labels, MatchOp, Matcher};

use super::{put_str, put_uvarint, put_varint, Decbuf};

const MAGIC: u32 = 0x4944_5831;
const VERSION: u8 = 1;

/// Where one chunk is and what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    pub samples: u64,
    pub segment: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSeries {
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

/// A decoded index, held in memory while the block is in use.
#[derive(Debug, Default)]
pub struct Index {
    pub series: Vec<IndexSeries>,
    /// name → value → series positions, ascending.
    pub postings: BTreeMap<String, BTreeMap<String, Vec<u32>>>,
}

/// Encodes an index for series already sorted by labels.
pub fn encode(series: &[IndexSeries]) -> Vec<u8> {
    debug_assert!(series.windows(2).all(|w| w[0].labels < w[1].labels));
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for (position, s) in series.iter().enumerate() {
        for label in &s.labels {
            symbols.insert(&label.name);
            symbols.insert(&label.value);
            postings
                .entry((&label.name, &label.value))
                .or_default()
                .push(position as u32);
        }
    }
    let symbol_ids: BTreeMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u64))
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(VERSION);
    put_uvarint(&mut out, symbols.len() as u64);
    for symbol in &symbols {
        put_str(&mut out, symbol);
    }
    put_uvarint(&mut out, series.len() as u64);
    for s in series {
        put_uvarint(&mut out, s.labels.len() as u64);
        for label in &s.labels {
            put_uvarint(&mut out, symbol_ids[label.name.as_str()]);
            put_uvarint(&mut out, symbol_ids[label.value.as_str()]);
        }
        put_uvarint(&mut out, s.chunks.len() as u64);
        let mut previous_max: Option<i64> = None;
        for c in &s.chunks {
            match previous_max {
                None => put_varint(&mut out, c.min_t),
                Some(previous) => put_varint(&mut out, c.min_t.wrapping_sub(previous)),
            }
            put_uvarint(&mut out, c.max_t.wrapping_sub(c.min_t) as u64);
            put_uvarint(&mut out, c.samples);
            put_uvarint(&mut out, c.segment);
            put_uvarint(&mut out, c.offset);
            previous_max = Some(c.max_t);
        }
    }
    put_uvarint(&mut out, postings.len() as u64);
    for ((name, value), ids) in &postings {
        put_uvarint(&mut out, symbol_ids[name]);
        put_uvarint(&mut out, symbol_ids[value]);
        put_uvarint(&mut out, ids.len() as u64);
        let mut previous = 0u32;
        for (i, id) in ids.iter().enumerate() {
            put_uvarint(
                &mut out,
                u64::from(if i == 0 { *id } else { id - previous }),
            );
            previous = *id;
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes an index file; `Err` names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Index, String> {
    if bytes.len() < 9 {
        return Err("index too short".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("index checksum mismatch".into());
    }
    if body[..4] != MAGIC.to_be_bytes() {
        return Err("bad index magic".into());
    }
    if body[4] != VERSION {
        return Err(format!("unknown index version {}", body[4]));
    }
    let mut d = Decbuf::new(&body[5..]);
    let bad = |what: &str| format!("malformed index ({what})");
    let count = d.uvarint().ok_or_else(|| bad("symbol count"))?;
    let mut symbols: Vec<&str> = Vec::new();
    for _ in 0..count {
        symbols.push(d.str().ok_or_else(|| bad("symbol"))?);
    }
    let symbol = |id: Option<u64>| -> Result<&str, String> {
        id.and_then(|i| symbols.get(usize::try_from(i).ok()?).copied())
            .ok_or_else(|| bad("symbol reference"))
    };
    let count = d.uvarint().ok_or_else(|| bad("series count"))?;
    let mut index = Index::default();
    for _ in 0..count {
        let nlabels = d.uvarint().ok_or_else(|| bad("label count"))?;
        let mut labels = Vec::new();
        for _ in 0..nlabels {
            let name = symbol(d.uvarint())?;
            let value = symbol(d.uvarint())?;
            labels.push(Label::new(name, value));
        }
        let nchunks = d.uvarint().ok_or_else(|| bad("chunk count"))?;
        let mut chunks = Vec::new();
        let mut previous_max: Option<i64> = None;
        for _ in 0..nchunks {
            let delta = d.varint().ok_or_else(|| bad("chunk min_t"))?;
            let min_t = previous_max.map_or(delta, |p| p.wrapping_add(delta));
            let span = d.uvarint().ok_or_else(|| bad("chunk span"))?;
            let max_t = min_t.wrapping_add(span as i64);
            let samples = d.uvarint().ok_or_else(|| bad("chunk samples"))?;
            let segment = d.uvarint().ok_or_else(|| bad("chunk segment"))?;
            let offset = d.uvarint().ok_or_else(|| bad("chunk offset"))?;
            chunks.push(ChunkMeta {
                min_t,
                max_t,
                samples,
                segment,
                offset,
            });
            previous_max = Some(max_t);
        }
        index.series.push(IndexSeries {
            labels: Labels::from_sorted(labels),
            chunks,
        });
    }
    let count = d.uvarint().ok_or_else(|| bad("postings count"))?;
    for _ in 0..count {
        let name = symbol(d.uvarint())?;
        let value = symbol(d.uvarint())?;
        let n = d.uvarint().ok_or_else(|| bad("postings length"))?;
        let mut ids = Vec::new();
        let mut previous = 0u64;
        for i in 0..n {
            let raw = d.uvarint().ok_or_else(|| bad("posting"))?;
            let id = if i == 0 { raw } else { previous + raw };
            if id >= index.series.len() as u64 {
                return Err(bad("posting out of range"));
            }
            ids.push(id as u32);
            previous = id;
        }
        index
            .postings
            .entry(name.to_string())
            .or_default()
            .insert(value.to_string(), ids);
    }
    if d.pos != d.bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(index)
}

impl Index {
    /// Positions of the series matching every matcher, ascending. Equality
    /// matchers on a non-empty value narrow through the postings; every
    /// matcher is then checked on the candidates' labels.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut candidates: Option<Vec<u32>> = None;
        for m in matchers {
            if m.op != MatchOp::Equal || m.value.is_empty() {
                continue;
            }
            let list = self
                .postings
                .get(&m.name)
                .and_then(|values| values.get(&m.value))
                .cloned()
                .unwrap_or_default();
            candidates = Some(match candidates {
                None => list,
                Some(current) => crate::head::postings::intersect(&current, &list),
            });
        }
        let all = || (0..self.series.len() as u32).collect::<Vec<u32>>();
        candidates
            .unwrap_or_else(all)
            .into_iter()
            .filter(|&position| {
                let labels = &self.series[position as usize].labels;
                matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_selects() {
        let chunk = |min_t: i64, offset: u64| ChunkMeta {
            min_t,
            max_t: min_t + 10,
            samples: 3,
            segment: 1,
            offset,
        };
        let series = vec![
            IndexSeries {
                labels: Labels::from_pairs(&[("__name__", "a"), ("job", "x")]),
                chunks: vec![chunk(-5, 8), chunk(100, 40)],
            },
            IndexSeries {
                labels: Labels::from_pairs(&[("__name__", "b"), ("job", "x")]),
                chunks: vec![chunk(0, 70)],
            },
        ];
        let bytes = encode(&series);
        let index = decode(&bytes).unwrap();
        assert_eq!(index.series, series);
        assert_eq!(index.select(&[Matcher::equal("job", "x")]), vec![0, 1]);
        assert_eq!(
            index.select(&[Matcher::equal("job", "x"), Matcher::equal("__name__", "b")]),
            vec![1]
        );
        let not_a = Matcher::new(MatchOp::NotEqual, "__name__", "a").unwrap();
        assert_eq!(index.select(&[not_a]), vec![1]);
        assert_eq!(index.select(&[Matcher::equal("nope", "")]), vec![0, 1]);
        let mut broken = bytes.clone();
        broken[7] ^= 1;
        assert!(decode(&broken).is_err());
    }
}
