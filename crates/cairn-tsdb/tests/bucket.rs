//! Blocks in a bucket (a local folder here; `crates/cairn/tests/object_storage.rs`
//! runs the same against a real S3 server): uploaded after every pass, the
//! local disk wiped and everything served again from the bucket, sources of
//! a compaction kept in the bucket until the compacted block is there, and
//! per-tenant retention deleting from disk and bucket.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_model::{Labels, Queryable, Sample, SeriesSamples, TenantId, TimeRange};
use cairn_tsdb::bucket::{Bucket, BucketBackend};
use cairn_tsdb::{TenantStore, Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const SERIES: i64 = 3;

fn options(bucket_dir: &Path) -> TsdbOptions {
    TsdbOptions {
        compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR],
        maintenance_interval: Duration::ZERO,
        bucket: Some(BucketBackend::Filesystem {
            dir: bucket_dir.to_path_buf(),
        }),
        ..TsdbOptions::default()
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// One sample per series per minute in `[from, to)` minutes.
fn write(db: &Tsdb, from: i64, to: i64) {
    for minute in from..to {
        let batch = (0..SERIES)
            .map(|i| SeriesSamples {
                labels: Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]),
                samples: vec![Sample::new(minute * MINUTE, (minute * SERIES + i) as f64)],
                exemplars: Vec::new(),
            })
            .collect();
        db.append(batch).unwrap();
    }
}

/// Every series holds exactly the minutes `[0, to)`, once, with their values.
fn assert_exactly(db: &Tsdb, range: TimeRange, to: i64) {
    let selected = db.select(&[], range).unwrap();
    assert_eq!(selected.len(), SERIES as usize);
    for series in selected {
        let i: i64 = series.labels.get("i").unwrap().parse().unwrap();
        assert_eq!(series.samples.len() as i64, to, "series {i}");
        for (m, sample) in series.samples.iter().enumerate() {
            let m = m as i64;
            let expected = Sample::new(m * MINUTE, (m * SERIES + i) as f64);
            assert_eq!(*sample, expected, "series {i}");
        }
    }
}

fn local_blocks(db: &Tsdb) -> BTreeSet<String> {
    db.blocks().into_iter().map(|b| b.ulid).collect()
}

fn bucket_blocks(bucket: &Bucket, tenant: &str) -> BTreeSet<String> {
    let listing = bucket.list_blocks(tenant).unwrap();
    assert!(listing.partial.is_empty(), "partial blocks: {listing:?}");
    listing.complete.into_iter().collect()
}

fn bucket_at(dir: &Path) -> Bucket {
    Bucket::new(&BucketBackend::Filesystem {
        dir: dir.to_path_buf(),
    })
    .unwrap()
}

#[test]
fn a_node_on_an_empty_disk_serves_every_block_from_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let first_disk = tmp.path().join("disk1");
    {
        let store = TenantStore::open(&first_disk, options(&bucket_dir)).unwrap();
        let db = store.get_or_create(&tenant("t")).unwrap();
        write(&db, 0, 10 * 60);
        db.maintain(i64::MAX).unwrap();
        // [0,8h) cut into 2h blocks and compacted into 4h ones.
        let local = local_blocks(&db);
        assert_eq!(db.blocks().len(), 2, "{:?}", db.blocks());
        assert_eq!(bucket_blocks(&bucket_at(&bucket_dir), "t"), local);
        let stats = store.bucket_stats().unwrap();
        let uploads = stats.iter().find(|s| s.operation == "upload").unwrap();
        // Per block: one chunk segment, the index and meta.json.
        assert_eq!((uploads.total, uploads.failures), (6, 0));
        assert_eq!(uploads.duration_buckets.iter().map(|b| b.1).sum::<u64>(), 6);
        assert_linked(
            &first_disk.join("tenants/t/blocks"),
            &bucket_dir.join("t"),
            &local,
        );
    }
    let second_disk = tmp.path().join("disk2");
    let store = TenantStore::open(&second_disk, options(&bucket_dir)).unwrap();
    let db = store
        .get(&tenant("t"))
        .expect("tenant discovered in the bucket");
    assert_eq!(db.blocks().len(), 2);
    assert_exactly(&db, TimeRange::all(), 8 * 60);
    let gets = store.bucket_stats().unwrap();
    assert_eq!(gets.iter().find(|s| s.operation == "get").unwrap().total, 6);
    assert_linked(
        &second_disk.join("tenants/t/blocks"),
        &bucket_dir.join("t"),
        &local_blocks(&db),
    );
    // Nothing more to ship or delete: the bucket already matches.
    assert_eq!(db.sync_bucket().unwrap(), cairn_tsdb::SyncReport::default());
    // The new node carries on writing, cutting and shipping.
    write(&db, 10 * 60, 14 * 60);
    db.maintain(i64::MAX).unwrap();
    assert_eq!(
        bucket_blocks(&bucket_at(&bucket_dir), "t"),
        local_blocks(&db)
    );
    assert!(db.blocks().iter().any(|b| b.max_time > 10 * HOUR));
    // The first node's head (8h..10h, in its WAL) went with its disk.
    assert_exactly(&db, TimeRange::new(0, 10 * HOUR - 1), 8 * 60);
}

/// Every file of every block in `blocks` is the bucket's object itself (a
/// hard link, same inode): a local-folder bucket on the blocks' filesystem
/// holds no second copy of the data.
fn assert_linked(blocks: &Path, bucket_tenant: &Path, ulids: &BTreeSet<String>) {
    use std::os::unix::fs::MetadataExt;
    for ulid in ulids {
        let mut files = vec![PathBuf::from("index"), PathBuf::from("meta.json")];
        for segment in std::fs::read_dir(blocks.join(ulid).join("chunks")).unwrap() {
            files.push(Path::new("chunks").join(segment.unwrap().file_name()));
        }
        for file in files {
            let local = std::fs::metadata(blocks.join(ulid).join(&file)).unwrap();
            let object = std::fs::metadata(bucket_tenant.join(ulid).join(&file)).unwrap();
            assert_eq!(
                (local.dev(), local.ino()),
                (object.dev(), object.ino()),
                "{ulid}/{}",
                file.display()
            );
        }
    }
}

/// Replaces the bucket folder with a file, so every write fails.
fn break_bucket(dir: &Path) -> PathBuf {
    let aside = dir.with_extension("aside");
    std::fs::rename(dir, &aside).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
    aside
}

fn repair_bucket(dir: &Path, aside: &Path) {
    std::fs::remove_file(dir).unwrap();
    std::fs::rename(aside, dir).unwrap();
}

#[test]
fn compaction_sources_leave_the_bucket_only_after_the_compacted_block_is_in() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let store = TenantStore::open(&tmp.path().join("disk"), options(&bucket_dir)).unwrap();
    let db = store.get_or_create(&tenant("t")).unwrap();
    write(&db, 0, 6 * 60);
    assert_eq!(db.cut_blocks(i64::MAX).unwrap().len(), 2);
    assert_eq!(db.sync_bucket().unwrap().uploaded, 2);
    let sources = local_blocks(&db);
    assert_eq!(bucket_blocks(&bucket_at(&bucket_dir), "t"), sources);

    // Compaction runs while the bucket is down: the local sources go (the
    // compacted block holds their data), the bucket's stay.
    let aside = break_bucket(&bucket_dir);
    assert!(db.maintain(i64::MAX).is_err(), "the upload must fail");
    let compacted = local_blocks(&db);
    assert_eq!(compacted.len(), 1);
    assert!(compacted.is_disjoint(&sources));
    repair_bucket(&bucket_dir, &aside);
    assert_eq!(bucket_blocks(&bucket_at(&bucket_dir), "t"), sources);
    let failures = store.bucket_stats().unwrap();
    assert!(failures.iter().any(|s| s.failures > 0), "{failures:?}");

    // Back up: the compacted block goes in, then the sources go out.
    let report = db.sync_bucket().unwrap();
    assert_eq!((report.uploaded, report.deleted, report.pending), (1, 2, 0));
    assert_eq!(bucket_blocks(&bucket_at(&bucket_dir), "t"), compacted);
    assert_exactly(&db, TimeRange::all(), 6 * 60);

    // A restart on the same disk does not bring the sources back.
    drop(db);
    drop(store);
    let store = TenantStore::open(&tmp.path().join("disk"), options(&bucket_dir)).unwrap();
    let db = store.get(&tenant("t")).unwrap();
    assert_eq!(local_blocks(&db), compacted);
}

/// Retention short for tenant `a`, long (forever) for `b`: after the pass
/// `a`'s old blocks are gone from disk and bucket, `b`'s are kept.
#[test]
fn retention_per_tenant_deletes_from_disk_and_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let data = tmp.path().join("disk");
    let store = TenantStore::open(&data, options(&bucket_dir)).unwrap();
    let a = store.get_or_create(&tenant("a")).unwrap();
    let b = store.get_or_create(&tenant("b")).unwrap();
    for db in [&a, &b] {
        write(db, 0, 10 * 60);
    }
    let now = 12 * HOUR;
    for db in [&a, &b] {
        db.maintain(now).unwrap();
    }
    let bucket = bucket_at(&bucket_dir);
    let a_blocks = local_blocks(&a);
    let b_blocks = local_blocks(&b);
    assert!(!a_blocks.is_empty());
    assert_eq!(bucket_blocks(&bucket, "a"), a_blocks);
    assert_eq!(bucket_blocks(&bucket, "b"), b_blocks);

    a.set_retention(Duration::from_secs(3600));
    for db in [&a, &b] {
        db.maintain(now).unwrap();
    }
    // Every block of `a` ended at 8h or earlier, before now - 1h.
    assert!(local_blocks(&a).is_empty());
    assert!(bucket_blocks(&bucket, "a").is_empty());
    let a_dir = data.join("tenants/a/blocks");
    let on_disk: Vec<_> = std::fs::read_dir(&a_dir).unwrap().collect();
    assert!(on_disk.is_empty(), "{on_disk:?}");
    let in_bucket: Vec<_> = std::fs::read_dir(bucket_dir.join("a"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(in_bucket.is_empty(), "{in_bucket:?}");
    // `a` keeps its head; `b` keeps everything.
    assert_eq!(local_blocks(&b), b_blocks);
    assert_eq!(bucket_blocks(&bucket, "b"), b_blocks);
    assert_exactly(&b, TimeRange::all(), 10 * 60);
    let a_left = a.select(&[], TimeRange::all()).unwrap();
    assert!(a_left
        .iter()
        .all(|s| s.samples.iter().all(|p| p.t >= 8 * HOUR)));
}

/// A block prefix without `meta.json` (an upload or deletion cut short) is
/// never downloaded as a block, and the next pass deletes it; a download
/// cut short leaves only a temporary directory, removed at open.
#[test]
fn partial_blocks_in_the_bucket_are_ignored_then_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let first_disk = tmp.path().join("disk1");
    let shipped = {
        let store = TenantStore::open(&first_disk, options(&bucket_dir)).unwrap();
        let db = store.get_or_create(&tenant("t")).unwrap();
        write(&db, 0, 6 * 60);
        db.maintain(i64::MAX).unwrap();
        local_blocks(&db)
    };
    assert_eq!(shipped.len(), 1);
    // A second block whose meta.json never made it.
    let whole = bucket_dir.join("t").join(shipped.first().unwrap());
    let partial_id = "01JD5Q8R3ZC4W0E5N6S7T8V9XA";
    let partial = bucket_dir.join("t").join(partial_id);
    std::fs::create_dir_all(partial.join("chunks")).unwrap();
    std::fs::copy(whole.join("index"), partial.join("index")).unwrap();
    std::fs::copy(whole.join("chunks/000001"), partial.join("chunks/000001")).unwrap();
    let listing = bucket_at(&bucket_dir).list_blocks("t").unwrap();
    assert_eq!(listing.partial, vec![partial_id.to_string()]);

    let second_disk = tmp.path().join("disk2");
    // A download interrupted by a crash on the new disk.
    let leftover = second_disk.join("tenants/t/blocks/01JD5Q8R3ZC4W0E5N6S7T8V9XB.tmp-for-creation");
    std::fs::create_dir_all(&leftover).unwrap();
    let store = TenantStore::open(&second_disk, options(&bucket_dir)).unwrap();
    let db = store.get(&tenant("t")).unwrap();
    assert_eq!(local_blocks(&db), shipped);
    assert!(!leftover.exists());
    assert_exactly(&db, TimeRange::all(), 4 * 60);
    let report = db.sync_bucket().unwrap();
    assert_eq!((report.uploaded, report.deleted), (0, 1));
    assert!(!partial.exists());
    assert_eq!(bucket_blocks(&bucket_at(&bucket_dir), "t"), shipped);
}
