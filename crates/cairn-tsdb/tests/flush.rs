//! `Tsdb::flush_head` (Mimir's forced flush): the whole head becomes blocks
//! at once, whatever its span, every sample is read back exactly once from
//! the blocks (also after a restart), and the head refuses samples older
//! than the flushed end afterwards.

use cairn_model::{Labels, Queryable, Sample, SeriesSamples, TimeRange};
use cairn_tsdb::{Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;

fn batch(minute: i64) -> Vec<SeriesSamples> {
    (0..3)
        .map(|i| SeriesSamples {
            labels: Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]),
            samples: vec![Sample::new(minute * MINUTE, (minute * 3 + i) as f64)],
            exemplars: Vec::new(),
        })
        .collect()
}

fn options() -> TsdbOptions {
    TsdbOptions {
        maintenance_interval: std::time::Duration::ZERO,
        ..TsdbOptions::default()
    }
}

#[test]
fn flush_writes_the_whole_head_into_blocks_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), options()).unwrap();
    // 0:00 to 2:29: spans a 2 h boundary, less than the 3 h that
    // cut_blocks waits for.
    for minute in 0..150 {
        db.append(batch(minute)).unwrap();
    }
    assert!(db.cut_blocks(i64::MAX).unwrap().is_empty());
    let written = db.flush_head().unwrap();
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(written[0].max_time, 120 * MINUTE);
    assert_eq!(written[1].max_time, 149 * MINUTE + 1);
    assert!(db.head_time_range().is_none());
    let read = |db: &Tsdb| {
        db.select(&[], TimeRange::all())
            .unwrap()
            .iter()
            .map(|s| s.samples.len())
            .sum::<usize>()
    };
    assert_eq!(read(&db), 3 * 150);
    // Older than the flushed end: refused; newer: accepted into the head.
    let old = db.append(batch(149)).unwrap();
    assert_eq!(old.samples_accepted, 0);
    let new = db.append(batch(150)).unwrap();
    assert_eq!(new.samples_accepted, 3);
    // A second flush writes only what came since.
    assert_eq!(db.flush_head().unwrap().len(), 1);
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(tmp.path(), options()).unwrap();
    assert_eq!(read(&db), 3 * 151);
    assert_eq!(db.blocks().len(), 3);
}

#[test]
fn flush_of_an_empty_head_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), options()).unwrap();
    assert!(db.flush_head().unwrap().is_empty());
}
