//! Series deletion (tombstones) and tenant deletion, on real directories:
//! deleted samples vanish from every read at once, stay deleted across
//! restarts (WAL replay, block `tombstones` files), and leave the disk at
//! the next compaction or `clean_tombstones`; a tenant marked for deletion
//! is removed whole after its grace period, other tenants untouched.

mod support;

use std::path::Path;

use cairn_model::{
    Exemplar, Labels, Matcher, Queryable, Sample, SeriesSamples, TenantId, TimeRange,
};
use cairn_tsdb::bucket::BucketBackend;
use cairn_tsdb::{TenantStore, Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// A value no other sample has: its bytes are searched for on disk.
const SECRET: f64 = 31337.4242;
const SECRET_LABEL: &str = "gdpr-subject-4242";

fn options() -> TsdbOptions {
    TsdbOptions {
        wal_segment_size: 64 * 1024,
        compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR, 8 * HOUR],
        maintenance_interval: std::time::Duration::ZERO,
        ..TsdbOptions::default()
    }
}

fn open(dir: &Path) -> Tsdb {
    Tsdb::open(dir, options()).unwrap()
}

fn name(n: &str) -> Matcher {
    Matcher::equal("__name__", n)
}

/// `keep{i="0"}` and `keep{i="1"}` with value `t / MINUTE`, and `secret`
/// (label `user="gdpr-subject-4242"`) with value `SECRET`, every minute of
/// `[from, to)` minutes.
fn write_minutes(db: &Tsdb, from: i64, to: i64) {
    for minute in from..to {
        let t = minute * MINUTE;
        let mut batch: Vec<SeriesSamples> = (0..2)
            .map(|i| SeriesSamples {
                labels: Labels::from_pairs(&[("__name__", "keep"), ("i", &i.to_string())]),
                samples: vec![Sample::new(t, minute as f64)],
                exemplars: Vec::new(),
            })
            .collect();
        batch.push(SeriesSamples {
            labels: Labels::from_pairs(&[("__name__", "secret"), ("user", SECRET_LABEL)]),
            samples: vec![Sample::new(t, SECRET)],
            exemplars: vec![Exemplar {
                labels: Labels::from_pairs(&[("trace_id", "t")]),
                value: 1.0,
                t,
            }],
        });
        db.append(batch).unwrap();
    }
}

fn timestamps(db: &Tsdb, matchers: &[Matcher]) -> Vec<Vec<i64>> {
    support::select_checked(db, matchers, TimeRange::all())
        .into_iter()
        .map(|s| s.samples.iter().map(|p| p.t).collect())
        .collect()
}

fn minutes(range: std::ops::Range<i64>) -> Vec<i64> {
    range.map(|m| m * MINUTE).collect()
}

/// Whether any file under `dir` contains `needle`.
fn disk_contains(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

/// Reads a series, name, label value and exemplar of `secret` may show.
fn secret_visible(db: &Tsdb) -> Vec<&'static str> {
    let mut seen = Vec::new();
    if !support::select_checked(db, &[name("secret")], TimeRange::all()).is_empty() {
        seen.push("select");
    }
    if !db.series(&[name("secret")], TimeRange::all()).is_empty() {
        seen.push("series");
    }
    if db
        .label_values("__name__", &[], TimeRange::all())
        .unwrap()
        .contains(&"secret".to_string())
    {
        seen.push("label values");
    }
    if db
        .label_names(&[], TimeRange::all())
        .unwrap()
        .contains(&"user".to_string())
    {
        seen.push("label names");
    }
    if !db.exemplars(&[name("secret")], TimeRange::all()).is_empty() {
        seen.push("exemplars");
    }
    seen
}

#[test]
fn head_tombstones_hide_at_once_survive_replay_and_leave_the_wal_on_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    write_minutes(&db, 0, 30);
    let secret_bits = SECRET.to_bits().to_le_bytes();
    assert!(disk_contains(tmp.path(), &secret_bits));
    assert_eq!(secret_visible(&db).len(), 5);

    // A partial range of one series, and all of another.
    let stats = db
        .delete_series(
            &[name("keep"), Matcher::equal("i", "0")],
            10 * MINUTE,
            19 * MINUTE,
        )
        .unwrap();
    assert_eq!((stats.head_series, stats.block_series), (1, 0));
    db.delete_series(&[Matcher::equal("user", SECRET_LABEL)], i64::MIN, i64::MAX)
        .unwrap();
    let expect_keep = vec![[minutes(0..10), minutes(20..30)].concat(), minutes(0..30)];
    assert_eq!(timestamps(&db, &[name("keep")]), expect_keep);
    assert_eq!(secret_visible(&db), Vec::<&str>::new());
    // A series with only part of its range deleted still shows.
    assert_eq!(
        db.series(&[name("keep")], TimeRange::new(10 * MINUTE, 19 * MINUTE)),
        vec![Labels::from_pairs(&[("__name__", "keep"), ("i", "1")])]
    );

    // Samples written after the deletion are not hidden (the range was
    // clamped to the samples present), even with an open end.
    write_minutes(&db, 30, 32);
    assert_eq!(timestamps(&db, &[name("secret")]), vec![minutes(30..32)]);

    drop(db);
    let db = open(tmp.path());
    assert_eq!(timestamps(&db, &[name("secret")]), vec![minutes(30..32)]);
    assert_eq!(
        timestamps(&db, &[name("keep")])[0],
        [minutes(0..10), minutes(20..32)].concat()
    );

    // clean_tombstones checkpoints the WAL without the deleted samples.
    db.clean_tombstones().unwrap();
    db.delete_series(&[name("secret")], 30 * MINUTE, 31 * MINUTE)
        .unwrap();
    db.clean_tombstones().unwrap();
    assert!(!disk_contains(tmp.path(), &secret_bits));
    assert_eq!(secret_visible(&db), Vec::<&str>::new());
    drop(db);
    let db = open(tmp.path());
    assert_eq!(secret_visible(&db), Vec::<&str>::new());
    assert_eq!(
        timestamps(&db, &[name("keep")]),
        vec![[minutes(0..10), minutes(20..32)].concat(), minutes(0..32)]
    );
    // The series still takes new samples.
    write_minutes(&db, 32, 33);
    assert_eq!(timestamps(&db, &[name("secret")]), vec![minutes(32..33)]);
}

#[test]
fn block_tombstones_hide_at_once_persist_and_compaction_removes_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    // 7 hours: blocks [0,2h), [2h,4h), [4h,6h) are cut, the rest stays in the head.
    write_minutes(&db, 0, 7 * 60);
    db.cut_blocks(i64::MAX).unwrap();
    assert_eq!(db.blocks().len(), 2, "{:?}", db.blocks());
    let head_start = db.head_time_range().unwrap().0;
    assert_eq!(head_start, 4 * HOUR);

    // Across both blocks and the head: [1h, 5h] of keep{i="0"}; all of secret.
    db.delete_series(&[Matcher::equal("i", "0")], HOUR, 5 * HOUR)
        .unwrap();
    let stats = db
        .delete_series(&[name("secret")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!((stats.head_series, stats.block_series), (1, 2));
    let expect = vec![
        [minutes(0..60), minutes(5 * 60 + 1..7 * 60)].concat(),
        minutes(0..7 * 60),
    ];
    assert_eq!(timestamps(&db, &[name("keep")]), expect);
    assert_eq!(secret_visible(&db), Vec::<&str>::new());
    let block_dirs: Vec<_> = db
        .blocks()
        .iter()
        .map(|b| tmp.path().join("blocks").join(&b.ulid))
        .collect();
    assert!(block_dirs.iter().all(|d| d.join("tombstones").exists()));

    drop(db);
    let db = open(tmp.path());
    assert_eq!(timestamps(&db, &[name("keep")]), expect);
    assert_eq!(secret_visible(&db), Vec::<&str>::new());

    // Cut the rest of the head's range [4h, 6h): the block is written
    // without the deleted samples; then the maintenance pass compacts
    // [0,2h)+[2h,4h) and rewrites what still has tombstones.
    write_minutes(&db, 7 * 60, 8 * 60);
    db.maintain(i64::MAX).unwrap();
    let blocks = db.blocks();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let expect = vec![
        [minutes(0..60), minutes(5 * 60 + 1..8 * 60)].concat(),
        minutes(0..8 * 60),
    ];
    assert_eq!(timestamps(&db, &[name("keep")]), expect);
    let blocks_dir = tmp.path().join("blocks");
    assert!(!disk_contains(&blocks_dir, SECRET_LABEL.as_bytes()));
    assert!(!disk_contains(&blocks_dir, b"tombstones"));
    for b in &blocks {
        assert!(!blocks_dir.join(&b.ulid).join("tombstones").exists());
    }
    // Nothing deleted is counted in the blocks any more.
    let stored: u64 = blocks.iter().map(|b| b.stats.num_samples).sum();
    let keep_in_blocks = timestamps(&db, &[name("keep")])
        .iter()
        .flatten()
        .filter(|&&t| t < blocks.last().unwrap().max_time)
        .count() as u64;
    assert_eq!(stored, keep_in_blocks);
    drop(db);
    let db = open(tmp.path());
    assert_eq!(timestamps(&db, &[name("keep")]), expect);
    // Only what was written after the deletion.
    assert_eq!(
        timestamps(&db, &[name("secret")]),
        vec![minutes(7 * 60..8 * 60)]
    );
}

#[test]
fn a_lone_block_is_rewritten_and_an_emptied_block_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    write_minutes(&db, 0, 5 * 60);
    db.cut_blocks(i64::MAX).unwrap();
    assert_eq!(db.blocks().len(), 1);
    let old = db.blocks()[0].clone();
    db.delete_series(&[name("keep")], 0, 10 * MINUTE).unwrap();
    assert_eq!(db.clean_tombstones().unwrap(), 1);
    let new = db.blocks()[0].clone();
    assert_ne!(new.ulid, old.ulid);
    assert_eq!(new.compaction.level, old.compaction.level + 1);
    assert_eq!(new.compaction.sources, old.compaction.sources);
    assert!(!tmp.path().join("blocks").join(&old.ulid).exists());
    assert_eq!(
        timestamps(&db, &[name("keep")])[0][0],
        11 * MINUTE,
        "deleted range gone"
    );
    // Deleting everything in the block's range drops it.
    db.delete_series(
        &[Matcher::new(cairn_model::MatchOp::RegexMatch, "__name__", ".+").unwrap()],
        0,
        2 * HOUR - 1,
    )
    .unwrap();
    assert_eq!(db.clean_tombstones().unwrap(), 1);
    assert!(db.blocks().is_empty());
    assert_eq!(timestamps(&db, &[name("keep")])[0][0], 2 * HOUR);
    // Deleting what does not exist is no error and changes nothing.
    let stats = db.delete_series(&[name("nothing")], 0, i64::MAX).unwrap();
    assert_eq!((stats.head_series, stats.block_series), (0, 0));
    assert_eq!(db.clean_tombstones().unwrap(), 0);
}

#[test]
fn tenants_are_deleted_after_the_grace_period_only() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        tenant_deletion_delay: std::time::Duration::from_secs(3600),
        ..options()
    };
    let store = TenantStore::open(tmp.path(), opts.clone()).unwrap();
    let a = TenantId::new("a").unwrap();
    let b = TenantId::new("b").unwrap();
    let ghost = TenantId::new("ghost").unwrap();
    for tenant in [&a, &b] {
        write_minutes(&store.get_or_create(tenant).unwrap(), 0, 5);
    }
    assert!(!store.tenant_deletion_status(&a).unwrap().blocks_deleted);
    assert!(!store.mark_tenant_for_deletion(&ghost, 0).unwrap());
    assert!(store.tenant_deletion_status(&ghost).unwrap().blocks_deleted);

    let now = 1_000_000_000_000;
    assert!(store.mark_tenant_for_deletion(&a, now).unwrap());
    // A second request keeps the first deadline.
    assert!(store.mark_tenant_for_deletion(&a, now + HOUR).unwrap());
    assert!(store.delete_due_tenants(now + HOUR - 1000).is_empty());
    // Writes are still accepted in the grace period, and survive a restart.
    let old_handle = store.get(&a).unwrap();
    write_minutes(&old_handle, 5, 6);
    drop(store);
    let store = TenantStore::open(tmp.path(), opts.clone()).unwrap();
    assert_eq!(
        timestamps(&store.get(&a).unwrap(), &[name("secret")]),
        vec![minutes(0..6)]
    );
    let old_handle = store.get(&a).unwrap();

    assert_eq!(store.delete_due_tenants(now + HOUR), vec![a.clone()]);
    assert!(store.get(&a).is_none());
    assert!(!tmp.path().join("tenants").join("a").exists());
    assert!(store.tenant_deletion_status(&a).unwrap().blocks_deleted);
    assert!(!store.tenant_deletion_status(&b).unwrap().blocks_deleted);
    assert_eq!(
        timestamps(&store.get(&b).unwrap(), &[name("keep")]).len(),
        2
    );
    // A request still holding the deleted tenant cannot write any more.
    let late = old_handle.append(vec![SeriesSamples {
        labels: Labels::from_pairs(&[("__name__", "late")]),
        samples: vec![Sample::new(10 * MINUTE, 1.0)],
        exemplars: Vec::new(),
    }]);
    assert!(late.is_err());
    drop(old_handle);
    // A later write starts a new, empty tenant; a restart finds only that.
    write_minutes(&store.get_or_create(&a).unwrap(), 100, 101);
    drop(store);
    let store = TenantStore::open(tmp.path(), opts).unwrap();
    assert_eq!(
        timestamps(&store.get(&a).unwrap(), &[name("secret")]),
        vec![minutes(100..101)]
    );
    assert!(!tmp.path().join("deleting-tenants").exists());
}

/// A crash after the rewritten block's rename but before the old block's
/// deletion leaves both on disk; open keeps only the rewritten one, so the
/// deleted samples neither come back nor count twice.
#[test]
fn a_crash_between_rewrite_and_old_block_deletion_resolves_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    write_minutes(&db, 0, 5 * 60);
    db.cut_blocks(i64::MAX).unwrap();
    let old = db.blocks()[0].clone();
    db.delete_series(&[name("secret")], i64::MIN, i64::MAX)
        .unwrap();
    let old_dir = tmp.path().join("blocks").join(&old.ulid);
    let saved = tmp.path().join("saved-old-block");
    support::copy_dir(&old_dir, &saved);
    db.clean_tombstones().unwrap();
    let new = db.blocks()[0].clone();
    drop(db);
    std::fs::rename(&saved, &old_dir).unwrap();
    assert!(old_dir.join("tombstones").exists());

    let db = open(tmp.path());
    assert_eq!(
        db.blocks()
            .iter()
            .map(|b| b.ulid.clone())
            .collect::<Vec<_>>(),
        vec![new.ulid]
    );
    assert!(!old_dir.exists());
    assert!(timestamps(&db, &[name("secret")]).is_empty());
    assert_eq!(
        timestamps(&db, &[name("keep")]),
        vec![minutes(0..5 * 60); 2]
    );
}

/// With a bucket, the tenant's blocks leave the bucket too (first), so a
/// restart does not bring the tenant back from it; other tenants' blocks
/// stay. A cleaned block is replaced in the bucket at once.
#[test]
fn tenant_deletion_and_clean_tombstones_reach_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let opts = TsdbOptions {
        tenant_deletion_delay: std::time::Duration::ZERO,
        bucket: Some(BucketBackend::Filesystem {
            dir: bucket_dir.clone(),
        }),
        ..options()
    };
    let data = tmp.path().join("data");
    let store = TenantStore::open(&data, opts.clone()).unwrap();
    let a = TenantId::new("a").unwrap();
    let b = TenantId::new("b").unwrap();
    for tenant in [&a, &b] {
        let db = store.get_or_create(tenant).unwrap();
        write_minutes(&db, 0, 5 * 60);
        db.maintain(i64::MAX).unwrap();
        assert_eq!(db.blocks().len(), 1);
        assert!(bucket_dir
            .join(tenant.as_str())
            .join(&db.blocks()[0].ulid)
            .join("meta.json")
            .exists());
    }

    // clean_tombstones: the bucket holds the rewritten block only.
    let db_b = store.get(&b).unwrap();
    db_b.delete_series(&[name("secret")], i64::MIN, i64::MAX)
        .unwrap();
    db_b.clean_tombstones().unwrap();
    let new_block = db_b.blocks()[0].ulid.clone();
    let in_bucket: Vec<String> = std::fs::read_dir(bucket_dir.join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(in_bucket, vec![new_block]);
    assert!(!disk_contains(
        &bucket_dir.join("b"),
        SECRET_LABEL.as_bytes()
    ));

    assert!(store.mark_tenant_for_deletion(&a, 0).unwrap());
    assert_eq!(store.delete_due_tenants(1000), vec![a.clone()]);
    assert!(store.tenant_deletion_status(&a).unwrap().blocks_deleted);
    assert!(!store.tenant_deletion_status(&b).unwrap().blocks_deleted);
    let left: Vec<_> = std::fs::read_dir(bucket_dir.join("a"))
        .map(|d| d.collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    drop(db_b);
    drop(store);
    let store = TenantStore::open(&data, opts).unwrap();
    assert!(store
        .get(&a)
        .is_none_or(|db| db.select(&[], TimeRange::all()).unwrap().is_empty()));
    assert_eq!(
        timestamps(&store.get(&b).unwrap(), &[name("keep")]).len(),
        2
    );
}
