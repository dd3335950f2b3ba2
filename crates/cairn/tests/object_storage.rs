//! Object storage against a real S3-compatible server (`moto_server`,
//! started by `.ci/run` on loopback and named by `CAIRN_TEST_S3_ENDPOINT`):
//! blocks are uploaded, the local disk is deleted, a fresh process on the
//! same bucket serves every sample again, exactly once.
//!
//! Without the variable the test is skipped with a message, except under
//! CI (`CI` set), where it fails: CI must run it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_tsdb::bucket::{Bucket, BucketBackend, S3Options, Secret};
use support::{now_minute_ms, series, write_request, Cairn};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const SERIES: i64 = 3;
/// Hours of one-a-minute samples written (several 2h block ranges, and a
/// 12h compaction window).
const HOURS: i64 = 20;
const TENANT: &str = "tenant-s3";

/// The S3 endpoint, or `None` (skip) outside CI.
fn endpoint() -> Option<String> {
    match std::env::var("CAIRN_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CAIRN_TEST_S3_ENDPOINT is not set: .ci/run must start moto_server and export it"
            )
        }
        _ => {
            eprintln!("skipping: set CAIRN_TEST_S3_ENDPOINT to an S3-compatible server (e.g. moto_server -H 127.0.0.1 -p 5055) to run this test");
            None
        }
    }
}

fn s3_options(endpoint: &str, bucket_name: &str) -> S3Options {
    S3Options {
        bucket_name: bucket_name.to_string(),
        endpoint: endpoint.to_string(),
        region: "us-east-1".to_string(),
        access_key_id: "cairn-test".to_string(),
        secret_access_key: Secret("cairn-test-secret".to_string()),
        allow_http: true,
        virtual_hosted_style: false,
    }
}

/// Creates the bucket (S3 `CreateBucket`: a PUT on the bucket's path;
/// object_store has no call for it).
fn create_bucket(endpoint: &str, bucket_name: &str) {
    let response = reqwest::blocking::Client::new()
        .put(format!("{}/{bucket_name}", endpoint.trim_end_matches('/')))
        .send()
        .expect("CreateBucket on the S3 server");
    assert!(
        response.status().is_success(),
        "CreateBucket: {}",
        response.status()
    );
}

fn config(endpoint: &str, bucket_name: &str) -> String {
    format!(
        "storage:
  maintenance_interval: 1s
  bucket:
    backend: s3
    s3:
      endpoint: {endpoint}
      region: us-east-1
      bucket_name: {bucket_name}
      access_key_id: cairn-test
      secret_access_key: cairn-test-secret
      insecure: true
"
    )
}

fn value(minute: i64, i: i64) -> f64 {
    (minute * SERIES + i) as f64
}

/// Block ULIDs complete on the local disk (directories with a meta.json).
fn local_blocks(data: &Path, tenant: &str) -> BTreeSet<String> {
    let dir = data.join("tenants").join(tenant).join("blocks");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.contains('.'))
        .collect()
}

/// The newest `maxTime` among the local blocks.
fn local_max_time(data: &Path, tenant: &str, blocks: &BTreeSet<String>) -> i64 {
    blocks
        .iter()
        .map(|ulid| {
            let path = data
                .join("tenants")
                .join(tenant)
                .join("blocks")
                .join(ulid)
                .join("meta.json");
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            meta["maxTime"].as_i64().unwrap()
        })
        .max()
        .unwrap_or(i64::MIN)
}

/// Sum of a counter's samples with `operation="<op>"` on `/metrics`.
fn bucket_operations(cairn: &Cairn, op: &str) -> f64 {
    let needle = format!("cairn_bucket_operations_total{{operation=\"{op}\"}}");
    cairn
        .metrics_text()
        .lines()
        .filter_map(|l| l.strip_prefix(&needle))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .sum()
}

/// Waits until the tenant's local blocks are all in the bucket (and only
/// they), reach `until`, and stayed the same for two polls; returns them.
fn wait_until_shipped(
    cairn: &Cairn,
    bucket: &Bucket,
    data: &Path,
    tenant: &str,
    until: i64,
) -> BTreeSet<String> {
    let started = Instant::now();
    let mut stable = 0;
    let mut previous = BTreeSet::new();
    loop {
        let local = local_blocks(data, tenant);
        let listing = bucket.list_blocks(tenant).unwrap();
        let remote: BTreeSet<String> = listing.complete.iter().cloned().collect();
        let done = !local.is_empty()
            && local == remote
            && listing.partial.is_empty()
            && local_max_time(data, tenant, &local) >= until;
        stable = if done && local == previous {
            stable + 1
        } else {
            0
        };
        if stable >= 2 {
            return local;
        }
        previous = local.clone();
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "blocks of {tenant} never all reached the bucket: local {local:?}, bucket {listing:?}\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// A new bucket on the test's S3 server.
fn new_bucket(endpoint: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket_name = format!("cairn-test-{}-{nanos}", std::process::id());
    create_bucket(endpoint, &bucket_name);
    bucket_name
}

/// Writes `HOURS` of one-a-minute samples per series from `start`, then a
/// marker at `now` so the head moves past them and they are cut into blocks.
fn write_history(cairn: &Cairn, tenant: &str, start: i64, now: i64) {
    for i in 0..SERIES {
        let samples: Vec<(i64, f64)> = (0..HOURS * 60)
            .map(|m| (start + m * MINUTE, value(m, i)))
            .collect();
        for part in samples.chunks(600) {
            let request = write_request(vec![series(
                &[("__name__", "m"), ("i", &i.to_string())],
                part,
            )]);
            let (status, body) = cairn.push(Some(tenant), &request);
            assert_eq!(status, 200, "{body}");
        }
    }
    let marker = write_request(vec![series(&[("__name__", "marker")], &[(now, 1.0)])]);
    assert_eq!(cairn.push(Some(tenant), &marker).0, 200);
}

#[test]
fn blocks_survive_the_loss_of_the_local_disk() {
    let Some(endpoint) = endpoint() else {
        return;
    };
    let bucket_name = new_bucket(&endpoint);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let yaml = config(&endpoint, &bucket_name);

    // Samples from start to start + HOURS, all old enough to be cut into
    // blocks (the head keeps the newest ~3h, which is only a marker).
    let now = now_minute_ms();
    let start = (now - (HOURS + 10) * HOUR).div_euclid(2 * HOUR) * 2 * HOUR;
    let minutes = HOURS * 60;
    let cairn = Cairn::start(&data, &yaml);
    write_history(&cairn, TENANT, start, now);

    // Wait until every local block is in the bucket, the blocks cover all
    // the samples, and nothing changed for two polls.
    let bucket = Bucket::new(&BucketBackend::S3(s3_options(&endpoint, &bucket_name))).unwrap();
    let previous = wait_until_shipped(&cairn, &bucket, &data, TENANT, start + HOURS * HOUR);
    // Each block in the bucket is whole: chunks, index and meta.json.
    let store = bucket.store();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let objects: Vec<String> = runtime.block_on(async {
        use futures_util::TryStreamExt;
        let prefix = object_store::path::Path::from(TENANT);
        store
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    });
    for ulid in &previous {
        for file in ["meta.json", "index", "chunks/000001"] {
            let key = format!("{TENANT}/{ulid}/{file}");
            assert!(objects.contains(&key), "{key} missing from {objects:?}");
        }
    }
    assert!(bucket_operations(&cairn, "upload") >= 3.0 * previous.len() as f64);
    assert!(cairn.terminate().success());

    // The local disk is lost; a new process on the same bucket.
    std::fs::remove_dir_all(&data).unwrap();
    let cairn = Cairn::start(&data, &yaml);
    assert_eq!(
        local_blocks(&data, TENANT),
        previous,
        "every block downloaded"
    );
    assert!(bucket_operations(&cairn, "get") >= 3.0 * previous.len() as f64);

    let last = start + (minutes - 1) * MINUTE;
    let last_s = last as f64 / 1000.0;
    let counted = cairn.query(TENANT, &format!("count_over_time(m[{HOURS}h])"), last_s);
    let counted = counted.as_array().unwrap();
    assert_eq!(counted.len(), SERIES as usize, "{counted:?}");
    for s in counted {
        assert_eq!(s["value"][1], minutes.to_string(), "{s}");
    }
    let result = cairn.query_range(TENANT, "m", start as f64 / 1000.0, last_s, 60.0);
    assert_eq!(result.len(), SERIES as usize);
    for s in &result {
        let i: i64 = s["metric"]["i"].as_str().unwrap().parse().unwrap();
        let expected: Vec<(i64, f64)> = (0..minutes)
            .map(|m| (start + m * MINUTE, value(m, i)))
            .collect();
        let got = support::points(s);
        assert_eq!(got.len(), expected.len(), "series {i}");
        assert!(got == expected, "series {i} differs after the restart");
    }
    drop(cairn);
}

/// Retention short for tenant `a`, long for `b`, set by the runtime
/// overrides (`compactor_blocks_retention_period`): once the overrides
/// change, `a`'s old blocks go from disk and bucket, `b`'s stay.
#[test]
fn retention_per_tenant_deletes_from_disk_and_bucket() {
    let Some(endpoint) = endpoint() else {
        return;
    };
    let bucket_name = new_bucket(&endpoint);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let overrides = tmp.path().join("overrides.yaml");
    let long = "overrides:\n  a:\n    compactor_blocks_retention_period: 30d\n  b:\n    compactor_blocks_retention_period: 30d\n";
    std::fs::write(&overrides, long).unwrap();
    let yaml = format!(
        "{}runtime_config:\n  file: {}\n  period: 1s\n",
        config(&endpoint, &bucket_name),
        overrides.display()
    );
    let now = now_minute_ms();
    let start = (now - (HOURS + 10) * HOUR).div_euclid(2 * HOUR) * 2 * HOUR;
    let cairn = Cairn::start(&data, &yaml);
    let bucket = Bucket::new(&BucketBackend::S3(s3_options(&endpoint, &bucket_name))).unwrap();
    let mut shipped = Vec::new();
    for tenant in ["a", "b"] {
        write_history(&cairn, tenant, start, now);
    }
    for tenant in ["a", "b"] {
        shipped.push(wait_until_shipped(
            &cairn,
            &bucket,
            &data,
            tenant,
            start + HOURS * HOUR,
        ));
    }

    // Every block of `a` ended 10h ago or earlier: all older than 2h.
    let short = "overrides:\n  a:\n    compactor_blocks_retention_period: 2h\n  b:\n    compactor_blocks_retention_period: 30d\n";
    std::fs::write(&overrides, short).unwrap();
    let started = Instant::now();
    loop {
        let local = local_blocks(&data, "a");
        let listing = bucket.list_blocks("a").unwrap();
        if local.is_empty() && listing.complete.is_empty() && listing.partial.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a's blocks were not deleted: local {local:?}, bucket {listing:?}\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Not a single object of `a`'s blocks is left in the bucket.
    let store = bucket.store();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let left: Vec<_> = runtime.block_on(async {
        use futures_util::StreamExt;
        store
            .list(Some(&object_store::path::Path::from("a")))
            .collect::<Vec<_>>()
            .await
    });
    assert!(left.is_empty(), "{left:?}");
    // Two more passes: `b` keeps everything, on disk and in the bucket.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(local_blocks(&data, "b"), shipped[1]);
    let listing = bucket.list_blocks("b").unwrap();
    assert_eq!(
        listing.complete.into_iter().collect::<BTreeSet<_>>(),
        shipped[1]
    );
    let last_s = (start + (HOURS * 60 - 1) * MINUTE) as f64 / 1000.0;
    let expected = (HOURS * 60).to_string();
    let b = cairn.query("b", &format!("count_over_time(m[{HOURS}h])"), last_s);
    let b = b.as_array().unwrap();
    assert_eq!(b.len(), SERIES as usize);
    assert!(
        b.iter().all(|s| s["value"][1] == expected.as_str()),
        "{b:?}"
    );
    let a = cairn.query("a", &format!("count_over_time(m[{HOURS}h])"), last_s);
    assert_eq!(a, serde_json::json!([]), "a's old samples are gone");
}
