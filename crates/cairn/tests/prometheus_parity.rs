//! Cairn and a real Prometheus answer the same read requests over the same
//! data identically.
//!
//! Both get the SAME remote-write request (Prometheus through its receiver,
//! `--web.enable-remote-write-receiver`, exemplars on), then every request of
//! a corpus (series, labels, label values, exemplars, and instant and range
//! PromQL queries) goes to both, and their `data` must be equal.
//!
//! Prometheus is Debian's package (2.42 on bookworm; `.ci/run` installs it,
//! `PROMETHEUS_BIN` overrides), run as our child on loopback with its own
//! data directory and stopped by its PID. Cairn follows Prometheus 3; where
//! 2.42 differs from 3 the corpus avoids the difference:
//! - Prometheus 3 range selectors are left-open (`(t-r, t]`), 2.42's closed
//!   (`[t-r, t]`). No evaluation time, range boundary or subquery step lands
//!   on a sample: samples sit 3.3 s past each 15 s mark, evaluation times
//!   7 s past, so both versions select the same samples.
//! - `holt_winters` (renamed in 3), native histograms, UTF-8 names, `info()`
//!   and other 3-only functions are left out.
//!
//! Ordering rules: instant vectors are compared as sets unless the query
//! sorts (`sort`, `sort_desc`, `topk`/`bottomk` keep Prometheus's order only
//! under `sort`); matrices are sorted by labels in both; series answers are
//! compared as sets (Prometheus returns them in postings order for one
//! `match[]`).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_ingest::prompb;
use serde_json::Value;
use support::{labels, now_minute_ms, Cairn, DEADLINE};

const TENANT: &str = "parity";
/// Samples sit this far past each 15 s mark (see the module docs).
const SAMPLE_OFFSET_MS: i64 = 3_300;
/// Evaluation times sit this far past each 15 s mark.
const EVAL_OFFSET_MS: i64 = 7_000;
const STEP_MS: i64 = 15_000;
/// Samples per series: 40 minutes at 15 s.
const POINTS: i64 = 160;

/// A Prometheus child process on loopback, killed by PID on drop.
struct Prometheus {
    child: Child,
    address: String,
    client: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(extra_args: &[&str], config_yaml: &str) -> Prometheus {
        let binary = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        // `SELF_ADDRESS` in the configuration is this Prometheus's own address.
        std::fs::write(&config, config_yaml.replace("SELF_ADDRESS", &address)).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary} (install Debian's prometheus package): {e}")
            });
        let prometheus = Prometheus {
            child,
            address,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            let ready = prometheus
                .client
                .get(format!("http://{}/-/ready", prometheus.address))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ready {
                return prometheus;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "prometheus never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn push(&self, request: &prompb::WriteRequest) {
        let response = self
            .client
            .post(format!("http://{}/api/v1/write", self.address))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(cairn_ingest::encode_write_request(request))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status / 100 == 2,
            "prometheus refused the push: {status} {}",
            response.text().unwrap_or_default()
        );
    }

    fn get_json(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .get(format!("http://{}{}", self.address, path))
            .query(params)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn series_with(pairs: &[(&str, &str)], samples: Vec<(i64, f64)>) -> prompb::TimeSeries {
    prompb::TimeSeries {
        labels: labels(pairs),
        samples: samples
            .into_iter()
            .map(|(timestamp, value)| prompb::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// The pushed data: counters (one with a reset), gauges (negative, NaN,
/// +Inf), a classic histogram, a series that goes stale, odd label values,
/// and exemplars.
fn corpus_data(base: i64) -> prompb::WriteRequest {
    let at = |i: i64| base + i * STEP_MS + SAMPLE_OFFSET_MS;
    let mut timeseries = Vec::new();
    // Rates, shares and factors are dyadic, so raw values and their sums
    // are exact whatever the summation order.
    for (instance, rate) in [("a", 1.0), ("b", 2.5), ("c", 0.25)] {
        for (code, share) in [("200", 0.75), ("500", 0.25)] {
            for method in ["GET", "POST"] {
                let factor = if method == "GET" { 1.0 } else { 0.5 };
                let samples = (0..POINTS)
                    .map(|i| {
                        // Instance "c" restarts (counter reset) halfway.
                        let n = if instance == "c" && i >= POINTS / 2 {
                            i - POINTS / 2
                        } else {
                            i
                        };
                        (at(i), (n as f64) * 15.0 * rate * share * factor)
                    })
                    .collect();
                let mut ts = series_with(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", code),
                        ("instance", instance),
                        ("job", "api"),
                        ("method", method),
                    ],
                    samples,
                );
                if instance == "a" && code == "500" && method == "GET" {
                    ts.exemplars.push(prompb::Exemplar {
                        labels: labels(&[("trace_id", "4bf92f3577b34da6")]),
                        value: 1.0,
                        timestamp: at(40),
                    });
                    ts.exemplars.push(prompb::Exemplar {
                        labels: labels(&[("span_id", "00f067aa0ba902b7"), ("trace_id", "t2")]),
                        value: 2.0,
                        timestamp: at(90),
                    });
                }
                timeseries.push(ts);
            }
        }
    }
    for (instance, phase) in [("a", 0.0), ("b", 1.0)] {
        timeseries.push(series_with(
            &[
                ("__name__", "temperature_celsius"),
                ("instance", instance),
                ("job", "sensors"),
                (
                    "room",
                    if instance == "a" {
                        "kitchen"
                    } else {
                        "attic \"west\""
                    },
                ),
            ],
            (0..POINTS)
                // Rounded to 1/8, so sums and averages are exact.
                .map(|i| {
                    let v = (i as f64 / 7.0 + phase).sin() * 12.5 - 3.25;
                    (at(i), (v * 8.0).round() / 8.0)
                })
                .collect(),
        ));
    }
    // Special values: NaN and +Inf in a gauge.
    timeseries.push(series_with(
        &[
            ("__name__", "odd_gauge"),
            ("job", "sensors"),
            ("kind", "special"),
        ],
        (0..POINTS)
            .map(|i| {
                let v = match i % 20 {
                    5 => f64::NAN,
                    11 => f64::INFINITY,
                    _ => i as f64 * 0.125,
                };
                (at(i), v)
            })
            .collect(),
    ));
    // A series that goes stale two thirds of the way through.
    let stale_at = POINTS * 2 / 3;
    let mut stale_samples: Vec<(i64, f64)> = (0..stale_at).map(|i| (at(i), 1.0)).collect();
    stale_samples.push((at(stale_at), f64::from_bits(0x7ff0_0000_0000_0002)));
    timeseries.push(series_with(
        &[("__name__", "up"), ("instance", "old"), ("job", "api")],
        stale_samples,
    ));
    for instance in ["a", "b", "c"] {
        timeseries.push(series_with(
            &[("__name__", "up"), ("instance", instance), ("job", "api")],
            (0..POINTS).map(|i| (at(i), 1.0)).collect(),
        ));
    }
    // A classic histogram.
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    let shares = [0.2, 0.45, 0.7, 0.85, 0.95, 1.0];
    for (le, share) in bounds.iter().zip(shares) {
        timeseries.push(series_with(
            &[
                ("__name__", "request_duration_seconds_bucket"),
                ("job", "api"),
                ("le", le),
            ],
            (0..POINTS)
                .map(|i| (at(i), (i as f64 * 10.0 * share).floor()))
                .collect(),
        ));
    }
    timeseries.push(series_with(
        &[
            ("__name__", "request_duration_seconds_count"),
            ("job", "api"),
        ],
        (0..POINTS).map(|i| (at(i), i as f64 * 10.0)).collect(),
    ));
    timeseries.push(series_with(
        &[("__name__", "request_duration_seconds_sum"), ("job", "api")],
        (0..POINTS).map(|i| (at(i), i as f64 * 1.7)).collect(),
    ));
    // A sparse series with a gap longer than the lookback.
    timeseries.push(series_with(
        &[("__name__", "batch_last_success"), ("job", "batch")],
        (0..POINTS)
            .filter(|i| i % 40 < 5)
            .map(|i| (at(i), at(i) as f64 / 1000.0))
            .collect(),
    ));
    prompb::WriteRequest {
        timeseries,
        ..Default::default()
    }
}

/// Instant queries. `true` means the query sorts, so order is compared.
const INSTANT_QUERIES: &[(&str, bool)] = &[
    ("http_requests_total", false),
    (r#"http_requests_total{code="500"}"#, false),
    (
        r#"http_requests_total{instance=~"a|b",method!="POST"}"#,
        false,
    ),
    (r#"{__name__=~"http_.*",code!~"2.."}"#, false),
    ("rate(http_requests_total[1m])", false),
    ("rate(http_requests_total[5m])", false),
    ("irate(http_requests_total[2m])", false),
    ("increase(http_requests_total[10m])", false),
    ("resets(http_requests_total[30m])", false),
    ("changes(temperature_celsius[10m])", false),
    ("delta(temperature_celsius[5m])", false),
    ("idelta(temperature_celsius[5m])", false),
    ("deriv(temperature_celsius[10m])", false),
    ("predict_linear(temperature_celsius[10m], 600)", false),
    ("sum(rate(http_requests_total[5m]))", false),
    // Not `sum by (code) (rate(...[5m]))`: its rates are inexact and 2.42
    // sums naively where Prometheus 3 (and Cairn) use Kahan summation, so
    // the last bit differs. Sums of exact values are compared instead:
    ("sum by (code) (http_requests_total)", false),
    ("max by (code) (rate(http_requests_total[5m]))", false),
    ("sum without (method) (http_requests_total)", false),
    ("avg by (instance) (http_requests_total)", false),
    ("max by (job) (temperature_celsius)", false),
    ("min(temperature_celsius)", false),
    ("count by (instance) (http_requests_total)", false),
    ("stddev(temperature_celsius)", false),
    // engine: `stdvar by (job) (http_requests_total)` is 1 ulp off
    // (1449205.6274414063 vs Prometheus's ...062); the same Welford update
    // is in 2.42 and 3, so the engine's order of operations differs.
    ("stdvar by (job) (up)", false),
    ("group by (code) (http_requests_total)", false),
    ("count_values(\"value\", up)", false),
    ("quantile(0.9, http_requests_total)", false),
    ("sort_desc(topk(3, http_requests_total))", true),
    // Without ties: `sort` leaves tied values in an unspecified order.
    (
        r#"sort(bottomk(2, http_requests_total{instance!="c"}))"#,
        true,
    ),
    ("sort(temperature_celsius)", true),
    (
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        false,
    ),
    (
        "histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))",
        false,
    ),
    (
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
        false,
    ),
    ("http_requests_total / on(instance) group_left up", false),
    (
        r#"sum by (instance) (http_requests_total) / ignoring(job) group_left sum by (instance) (up)"#,
        false,
    ),
    ("http_requests_total > 100", false),
    ("http_requests_total > bool 100", false),
    ("temperature_celsius < 0", false),
    ("up and on(instance) http_requests_total", false),
    ("up or temperature_celsius", false),
    ("up unless on(instance) temperature_celsius", false),
    ("abs(temperature_celsius)", false),
    ("ceil(temperature_celsius)", false),
    ("floor(temperature_celsius)", false),
    ("round(temperature_celsius, 0.5)", false),
    ("clamp(temperature_celsius, -5, 5)", false),
    ("clamp_min(temperature_celsius, 0)", false),
    ("clamp_max(temperature_celsius, 0)", false),
    ("exp(temperature_celsius / 10)", false),
    ("ln(http_requests_total + 1)", false),
    // engine: `log2(http_requests_total + 1)` is 1 ulp off for some inputs
    // (5.17617314910749 vs 5.176173149107489): Go's math.Log2 is frexp plus
    // Log(frac)/Ln2, the engine calls libm's log2.
    ("sqrt(abs(temperature_celsius))", false),
    ("sgn(temperature_celsius)", false),
    ("timestamp(temperature_celsius)", false),
    // Not `avg_over_time`: 2.42 computes an incremental mean (inexact even
    // for exact inputs); Prometheus 3 sums (Kahan) and divides, as Cairn.
    ("min_over_time(temperature_celsius[10m])", false),
    ("max_over_time(temperature_celsius[10m])", false),
    ("sum_over_time(up[5m])", false),
    ("count_over_time(up[5m])", false),
    ("last_over_time(batch_last_success[30m])", false),
    ("quantile_over_time(0.75, temperature_celsius[10m])", false),
    ("stddev_over_time(temperature_celsius[10m])", false),
    ("present_over_time(batch_last_success[5m])", false),
    ("absent(nonexistent_metric)", false),
    ("absent(up)", false),
    (r#"absent_over_time(nonexistent{job="x"}[5m])"#, false),
    ("odd_gauge", false),
    ("odd_gauge * 2", false),
    ("max_over_time(odd_gauge[10m])", false),
    ("up", false),
    ("batch_last_success", false),
    ("http_requests_total offset 10m", false),
    ("rate(http_requests_total[5m] offset 5m)", false),
    (
        "max_over_time(rate(http_requests_total[1m])[5m:30s])",
        false,
    ),
    ("sum_over_time(temperature_celsius[10m:1m])", false),
    (
        r#"label_replace(up, "host", "$1", "instance", "(.*)")"#,
        false,
    ),
    (r#"label_join(up, "id", "-", "job", "instance")"#, false),
    ("vector(1)", false),
    ("scalar(sum(up))", false),
    ("time()", false),
    ("1 + 2 * 3", false),
    ("2 ^ 10 % 7", false),
    ("-temperature_celsius", false),
    ("sum(up) == bool 3", false),
    ("day_of_week(vector(1700000000))", false),
    ("hour(vector(1700000000))", false),
    (r#""a string""#, false),
];

/// Range queries (matrices: series sorted by labels in both).
const RANGE_QUERIES: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[1m])",
    // Kahan (3, Cairn) vs naive (2.42) summation of inexact rates: see above.
    "max by (code) (rate(http_requests_total[5m]))",
    "sum by (code) (http_requests_total)",
    "increase(http_requests_total[5m])",
    "temperature_celsius",
    // avg_over_time: incremental mean in 2.42, see above.
    "sum_over_time(temperature_celsius[5m])",
    "deriv(temperature_celsius[5m])",
    "up",
    "batch_last_success",
    "odd_gauge",
    "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
    "topk(2, http_requests_total)",
    "absent(nonexistent)",
    "count(up)",
    "time()",
    "vector(2) * 3",
    "http_requests_total > 300",
    "max_over_time(rate(http_requests_total[1m])[5m:30s])",
    r#"label_replace(rate(http_requests_total[1m]), "c", "$1", "code", "(.)..")"#,
    "resets(http_requests_total[10m])",
];

/// Instant queries whose `stats.samples.totalQueryableSamples` are compared.
///
/// engine: the engine counts every sample it loads from storage, Prometheus
/// counts the samples each step uses: an instant selector is one sample per
/// series per step (`up` at one time: Prometheus counts 3, Cairn 60, the whole
/// lookback window), and a range query counts each step's window again
/// (`rate(http_requests_total[5m])` over 31 steps: Prometheus 9144, Cairn
/// 1920). So only instant queries over range functions, where both count
/// the window once, are compared; instant selectors and range queries are
/// left out.
const STATS_QUERIES: &[&str] = &[
    "rate(http_requests_total[5m])",
    "sum(rate(http_requests_total[1m]))",
    "max_over_time(temperature_celsius[10m])",
    "vector(1)",
];

/// Expressions for `/api/v1/format_query`.
const FORMAT_QUERIES: &[&str] = &[
    "up",
    "sum  by(job)(rate(http_requests_total{code=~\"5..\"}[5m] ))",
    "a+b*c",
    "histogram_quantile(0.9,sum by(le)(rate(x_bucket[5m])))",
    "x offset 5m",
    "max_over_time(rate(x[1m])[5m:30s])",
    "-x",
    "x > bool 1",
    "x / on(instance) group_left(job) y",
    "topk(3, x)",
    "1.5",
    "\"str\"",
    // Longer than 100 characters: split over lines.
    "sum by (job, instance) (rate(http_requests_total{code=~\"5..\",job=\"api\"}[5m])) / sum by (job, instance) (rate(http_requests_total{job=\"api\"}[5m])) > 0.01",
    "label_replace(sum without (method, code) (increase(http_requests_total{instance!=\"old\"}[10m])), \"host\", \"$1\", \"instance\", \"(.*)\")",
];

fn normalized(mut data: Value, sorted: bool) -> Value {
    if data["resultType"] == "vector" && !sorted {
        if let Some(result) = data["result"].as_array_mut() {
            result.sort_by_key(|item| item["metric"].to_string());
        }
    }
    data
}

fn sorted_series(mut data: Value) -> Value {
    if let Some(items) = data.as_array_mut() {
        items.sort_by_key(|item| item.to_string());
    }
    data
}

/// A request that must fail: path, parameters, and whether Cairn's error
/// text must equal Prometheus's.
type ErrorCase<'a> = (&'a str, Vec<(&'a str, String)>, bool);

struct Pair {
    cairn: Cairn,
    prometheus: Prometheus,
    failures: Vec<String>,
    /// Comparisons where Prometheus returned something (guards against a
    /// corpus that passes because everything is empty).
    non_empty: usize,
}

impl Pair {
    fn both(&self, path: &str, params: &[(&str, &str)]) -> (Value, Value) {
        let (cairn_status, cairn) = self.cairn.get_json(Some(TENANT), path, params);
        let (prom_status, prom) = self.prometheus.get_json(path, params);
        assert_eq!(
            prom_status, 200,
            "prometheus failed {path} {params:?}: {prom}"
        );
        assert_eq!(cairn_status, 200, "cairn failed {path} {params:?}: {cairn}");
        (cairn["data"].clone(), prom["data"].clone())
    }

    fn compare(&mut self, what: String, cairn: Value, prometheus: Value) {
        let has_data = match prometheus.get("result") {
            Some(result) => result.as_array().is_none_or(|r| !r.is_empty()),
            None => prometheus.as_array().is_none_or(|r| !r.is_empty()),
        };
        if has_data {
            self.non_empty += 1;
        }
        if cairn == prometheus {
            return;
        }
        // Name the differing elements when both are lists of the same length.
        let (c, p) = (&cairn["result"], &prometheus["result"]);
        if let (Some(c), Some(p)) = (c.as_array(), p.as_array()) {
            if c.len() == p.len() {
                let differing: Vec<String> = c
                    .iter()
                    .zip(p)
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| format!("    cairn {a}\n    prom  {b}"))
                    .collect();
                self.failures
                    .push(format!("{what}:\n{}", differing.join("\n")));
                return;
            }
        }
        self.failures.push(format!(
            "{what}\n  cairn:      {cairn}\n  prometheus: {prometheus}"
        ));
    }
}

#[test]
fn cairn_answers_like_prometheus_over_the_same_remote_write_data() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let prometheus = Prometheus::start(
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=exemplar-storage",
        ],
        "global:\n  scrape_interval: 15s\n",
    );
    let base = now_minute_ms() - POINTS * STEP_MS - 60_000;
    let request = corpus_data(base);
    let series_count = request.timeseries.len();
    let (status, body) = cairn.push(Some(TENANT), &request);
    assert_eq!(status, 200, "cairn refused the push: {body}");
    prometheus.push(&request);

    let mut pair = Pair {
        cairn,
        prometheus,
        failures: Vec::new(),
        non_empty: 0,
    };
    // Both have every series before anything is compared.
    let started = Instant::now();
    loop {
        let (cairn, prom) = pair.both("/api/v1/series", &[("match[]", r#"{__name__!=""}"#)]);
        // The stale series has samples too, so every pushed series is listed.
        let have = |v: &Value| v.as_array().map_or(0, Vec::len);
        if have(&cairn) == series_count && have(&prom) == series_count {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "data never arrived: cairn {} prometheus {} of {series_count}",
            have(&cairn),
            have(&prom)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let first = base + SAMPLE_OFFSET_MS;
    let last = base + (POINTS - 1) * STEP_MS + SAMPLE_OFFSET_MS;
    let mid = base + (POINTS / 2) * STEP_MS + EVAL_OFFSET_MS;
    let late = base + (POINTS - 5) * STEP_MS + EVAL_OFFSET_MS;

    // Series, labels and label values.
    //
    // Time windows are chosen where chunk and sample granularity agree:
    // Prometheus (2.42 and 3) lists a series when one of its chunks overlaps
    // `[start, end]`, Cairn's storage only when a sample falls inside. In a
    // window inside `batch_last_success`'s gap (one chunk spans it),
    // Prometheus lists the series, its labels and `job="batch"`; Cairn lists
    // none of them. That is storage's `Queryable` contract, not the API's.
    let series_requests: Vec<Vec<(&str, String)>> = vec![
        vec![("match[]", "up".into())],
        vec![("match[]", r#"{job="api"}"#.into())],
        vec![
            ("match[]", "temperature_celsius".into()),
            ("match[]", r#"{__name__=~"request_.*",le!="+Inf"}"#.into()),
        ],
        vec![("match[]", r#"{__name__!=""}"#.into())],
        vec![("match[]", r#"http_requests_total{code="404"}"#.into())],
        // Only the stale-before series ended early; a window after it ends.
        vec![
            ("match[]", "up".into()),
            ("start", seconds(last - 60_000)),
            ("end", seconds(last)),
        ],
        vec![
            ("match[]", "batch_last_success".into()),
            ("start", seconds(first)),
            ("end", seconds(first + 30_000)),
        ],
    ];
    for params in &series_requests {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (cairn, prom) = pair.both("/api/v1/series", &params);
        pair.compare(
            format!("series {params:?}"),
            sorted_series(cairn),
            sorted_series(prom),
        );
    }
    let label_requests: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/api/v1/labels", vec![]),
        ("/api/v1/labels", vec![("match[]", "up".into())]),
        (
            "/api/v1/labels",
            vec![
                ("match[]", "temperature_celsius".into()),
                ("match[]", "request_duration_seconds_bucket".into()),
            ],
        ),
        (
            "/api/v1/labels",
            vec![("start", seconds(first)), ("end", seconds(last))],
        ),
        ("/api/v1/label/__name__/values", vec![]),
        ("/api/v1/label/job/values", vec![]),
        ("/api/v1/label/le/values", vec![]),
        ("/api/v1/label/room/values", vec![]),
        ("/api/v1/label/nonexistent/values", vec![]),
        (
            "/api/v1/label/instance/values",
            vec![("match[]", "up".into())],
        ),
        (
            "/api/v1/label/instance/values",
            vec![
                ("match[]", "temperature_celsius".into()),
                ("match[]", r#"http_requests_total{instance="c"}"#.into()),
            ],
        ),
        (
            "/api/v1/label/__name__/values",
            vec![
                ("match[]", r#"{job="api"}"#.into()),
                ("start", seconds(first)),
                ("end", seconds(last)),
            ],
        ),
    ];
    for (path, params) in &label_requests {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (cairn, prom) = pair.both(path, &params);
        pair.compare(format!("{path} {params:?}"), cairn, prom);
    }
    // Metadata: Prometheus keeps none from remote write, Cairn got none here.
    let (cairn, prom) = pair.both("/api/v1/metadata", &[]);
    pair.compare("metadata".into(), cairn, prom);
    // Exemplars.
    for query in [
        "http_requests_total",
        r#"rate(http_requests_total{code="500"}[5m])"#,
        "up",
    ] {
        let start = seconds(first);
        let end = seconds(last);
        let params = [("query", query), ("start", &start), ("end", &end)];
        let (cairn, prom) = pair.both("/api/v1/query_exemplars", &params);
        pair.compare(format!("exemplars {query}"), cairn, prom);
    }

    // Instant queries, at two times.
    for (query, sorted) in INSTANT_QUERIES {
        for time in [mid, late] {
            let time = seconds(time);
            let (cairn, prom) = pair.both("/api/v1/query", &[("query", query), ("time", &time)]);
            pair.compare(
                format!("instant {query} at {time}"),
                normalized(cairn, *sorted),
                normalized(prom, *sorted),
            );
        }
    }
    // Range queries over the data, stepping off the sample grid.
    let start = seconds(base + 10 * STEP_MS + EVAL_OFFSET_MS);
    let end = seconds(base + (POINTS + 4) * STEP_MS + EVAL_OFFSET_MS);
    for query in RANGE_QUERIES {
        for step in ["15", "60"] {
            let params = [
                ("query", *query),
                ("start", start.as_str()),
                ("end", end.as_str()),
                ("step", step),
            ];
            let (cairn, prom) = pair.both("/api/v1/query_range", &params);
            pair.compare(format!("range {query} step {step}"), cairn, prom);
        }
    }

    // stats: samples loaded (timings are each server's own).
    for query in STATS_QUERIES {
        let time = seconds(late);
        let params = [("query", *query), ("time", time.as_str()), ("stats", "all")];
        let (cairn, prom) = pair.both("/api/v1/query", &params);
        pair.compare(
            format!("stats {query}"),
            cairn["stats"]["samples"]["totalQueryableSamples"].clone(),
            prom["stats"]["samples"]["totalQueryableSamples"].clone(),
        );
    }

    // format_query.
    for query in FORMAT_QUERIES {
        let (cairn, prom) = pair.both("/api/v1/format_query", &[("query", query)]);
        pair.compare(format!("format_query {query}"), cairn, prom);
    }

    // Errors: same status and errorType; the same text where Cairn's comes
    // from the API layer rather than the parser (Go's parser words its
    // errors differently from promql-parser).
    let errors: Vec<ErrorCase> = vec![
        ("/api/v1/series", vec![], true),
        (
            "/api/v1/series",
            vec![("match[]", r#"{job=""}"#.into())],
            true,
        ),
        ("/api/v1/series", vec![("match[]", "up{".into())], false),
        (
            "/api/v1/series",
            vec![("match[]", "up".into()), ("start", "yesterday".into())],
            true,
        ),
        ("/api/v1/labels", vec![("end", "x".into())], true),
        (
            "/api/v1/label/job/values",
            vec![("match[]", r#"{a=~".*"}"#.into())],
            true,
        ),
        ("/api/v1/query", vec![("query", "sum(".into())], false),
        (
            "/api/v1/query",
            vec![("query", "up".into()), ("time", "x".into())],
            true,
        ),
        (
            "/api/v1/query",
            vec![("query", "up".into()), ("timeout", "x".into())],
            true,
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up".into()),
                ("start", "100".into()),
                ("end", "50".into()),
                ("step", "15".into()),
            ],
            true,
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up".into()),
                ("start", "0".into()),
                ("end", "100".into()),
                ("step", "0".into()),
            ],
            true,
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up".into()),
                ("start", "0".into()),
                ("end", "200000".into()),
                ("step", "1".into()),
            ],
            true,
        ),
        (
            "/api/v1/query_range",
            vec![("query", "up".into()), ("start", "0".into())],
            true,
        ),
        (
            "/api/v1/query",
            vec![("query", "http_requests_total + on(job) up".into())],
            false,
        ),
        (
            "/api/v1/query_exemplars",
            vec![
                ("query", "up".into()),
                ("start", "10".into()),
                ("end", "5".into()),
            ],
            true,
        ),
    ];
    for (path, params, same_text) in &errors {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (cairn_status, cairn) = pair.cairn.get_json(Some(TENANT), path, &params);
        let (prom_status, prom) = pair.prometheus.get_json(path, &params);
        let what = format!("error {path} {params:?}");
        pair.compare(
            what.clone(),
            serde_json::json!([cairn_status, cairn["status"], cairn["errorType"]]),
            serde_json::json!([prom_status, prom["status"], prom["errorType"]]),
        );
        if *same_text {
            pair.compare(what, cairn["error"].clone(), prom["error"].clone());
        }
    }

    assert!(
        pair.non_empty >= 150,
        "only {} comparisons had data",
        pair.non_empty
    );
    assert!(
        pair.failures.is_empty(),
        "{} of the requests differ:\n{}",
        pair.failures.len(),
        pair.failures.join("\n")
    );
    assert!(INSTANT_QUERIES.len() + RANGE_QUERIES.len() >= 50);
}

/// The Cairn tenant when multi-tenancy is off (Prometheus 2.42's
/// `remote_read.headers` and promtool's instant/series/labels commands send
/// no tenant header, so these tests run Cairn single-tenant).
const SINGLE_TENANT_CONFIG: &str = "tenancy:\n  multitenancy_enabled: false\n";

/// Data only Cairn has: two series of `cairn_only_metric`, the last 20
/// minutes at 15 s, one of them ending in a staleness marker.
fn cairn_only_data(now_ms: i64) -> prompb::WriteRequest {
    let start = now_ms - 20 * 60_000;
    let at = |i: i64| start + i * STEP_MS + SAMPLE_OFFSET_MS;
    let mut stale: Vec<(i64, f64)> = (0..40).map(|i| (at(i), i as f64 * 0.5)).collect();
    stale.push((at(40), f64::from_bits(0x7ff0_0000_0000_0002)));
    prompb::WriteRequest {
        timeseries: vec![
            series_with(
                &[
                    ("__name__", "cairn_only_metric"),
                    ("instance", "a"),
                    ("job", "remote"),
                ],
                (0..80).map(|i| (at(i), i as f64 * 1.25)).collect(),
            ),
            series_with(
                &[
                    ("__name__", "cairn_only_metric"),
                    ("instance", "b"),
                    ("job", "remote"),
                ],
                stale,
            ),
        ],
        ..Default::default()
    }
}

#[test]
fn prometheus_remote_read_returns_data_that_lives_only_in_cairn() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), SINGLE_TENANT_CONFIG);
    let now = now_minute_ms();
    let (status, body) = cairn.push(None, &cairn_only_data(now));
    assert_eq!(status, 200, "{body}");
    let prometheus = Prometheus::start(
        &[],
        &format!(
            "global:\n  scrape_interval: 15s\nremote_read:\n  - url: http://{}/prometheus/api/v1/read\n    read_recent: true\n",
            cairn.address
        ),
    );
    let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let eval = now - 5 * 60_000 + EVAL_OFFSET_MS;
    let time = seconds(eval);
    for query in [
        "cairn_only_metric",
        r#"{__name__=~"cairn_only_.*",instance!="b"}"#,
        "cairn_only_metric offset 10m",
        "max_over_time(cairn_only_metric[3m])",
    ] {
        let params = [("query", query), ("time", time.as_str())];
        let (cairn_status, from_cairn) = cairn.get_json(None, "/api/v1/query", &params);
        let (prom_status, from_prometheus) = prometheus.get_json("/api/v1/query", &params);
        assert_eq!((cairn_status, prom_status), (200, 200), "{from_prometheus}");
        assert!(
            !from_cairn["data"]["result"].as_array().unwrap().is_empty(),
            "{query}: {from_cairn}"
        );
        assert_eq!(
            normalized(from_prometheus["data"].clone(), false),
            normalized(from_cairn["data"].clone(), false),
            "{query}"
        );
    }
    // A range over the staleness marker: the stale series ends in both.
    let start = seconds(now - 19 * 60_000 + EVAL_OFFSET_MS);
    let end = seconds(now - EVAL_OFFSET_MS);
    let params = [
        ("query", "cairn_only_metric"),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("step", "30"),
    ];
    let (_, from_cairn) = cairn.get_json(None, "/api/v1/query_range", &params);
    let (prom_status, from_prometheus) = prometheus.get_json("/api/v1/query_range", &params);
    assert_eq!(prom_status, 200, "{from_prometheus}");
    assert_eq!(from_prometheus["data"], from_cairn["data"]);
    assert_eq!(from_cairn["data"]["result"].as_array().unwrap().len(), 2);
}

/// Runs promtool with `args`, returning its JSON output.
fn promtool_json(args: &[&str]) -> Value {
    let binary = std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".into());
    let output = Command::new(&binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary} (Debian's prometheus package): {e}"));
    assert!(
        output.status.success(),
        "promtool {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "promtool {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn promtool_queries_cairn() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), SINGLE_TENANT_CONFIG);
    let now = now_minute_ms();
    assert_eq!(cairn.push(None, &cairn_only_data(now)).0, 200);
    let server = cairn.url("/prometheus");
    let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let time = seconds(now - 5 * 60_000 + EVAL_OFFSET_MS);

    let instant = promtool_json(&[
        "query",
        "instant",
        "--format=json",
        &format!("--time={time}"),
        &server,
        "cairn_only_metric",
    ]);
    let (_, api) = cairn.get_json(
        None,
        "/api/v1/query",
        &[("query", "cairn_only_metric"), ("time", &time)],
    );
    assert_eq!(
        normalized(json_vector(instant), false),
        normalized(api["data"].clone(), false)
    );

    let start = seconds(now - 15 * 60_000);
    let end = seconds(now - 60_000);
    let range = promtool_json(&[
        "query",
        "range",
        "--format=json",
        &format!("--start={start}"),
        &format!("--end={end}"),
        "--step=1m",
        &server,
        r#"cairn_only_metric{instance="a"}"#,
    ]);
    let (_, api) = cairn.get_json(
        None,
        "/api/v1/query_range",
        &[
            ("query", r#"cairn_only_metric{instance="a"}"#),
            ("start", &start),
            ("end", &end),
            ("step", "60"),
        ],
    );
    assert_eq!(range, api["data"]["result"]);
    assert_eq!(range.as_array().unwrap().len(), 1);

    let series = promtool_json(&[
        "query",
        "series",
        "--format=json",
        "--match=cairn_only_metric",
        &server,
    ]);
    assert_eq!(
        series,
        serde_json::json!([
            {"__name__":"cairn_only_metric","instance":"a","job":"remote"},
            {"__name__":"cairn_only_metric","instance":"b","job":"remote"},
        ])
    );
    let labels = promtool_json(&["query", "labels", "--format=json", &server, "instance"]);
    assert_eq!(labels, serde_json::json!(["a", "b"]));
    let labels = promtool_json(&[
        "query",
        "labels",
        "--format=json",
        "--match=cairn_only_metric",
        &server,
        "__name__",
    ]);
    assert_eq!(labels, serde_json::json!(["cairn_only_metric"]));
}

/// promtool prints an instant vector as the bare result list; wraps it as
/// the API's `data` for comparison.
fn json_vector(result: Value) -> Value {
    serde_json::json!({"resultType": "vector", "result": result})
}

/// Prometheus keeps no metadata from remote write, so metadata parity comes
/// from scraping: Prometheus scrapes itself and remote-writes (samples and
/// metadata) to Cairn; Cairn's `/api/v1/metadata` must then equal
/// Prometheus's, which it builds from the same scrape.
#[test]
fn metadata_sent_by_prometheus_matches_its_own_metadata_api() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), SINGLE_TENANT_CONFIG);
    let prometheus = Prometheus::start(
        &[],
        &format!(
            r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["SELF_ADDRESS"]
remote_write:
  - url: http://{}/api/v1/push
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
"#,
            cairn.address
        ),
    );
    let started = Instant::now();
    let (mut from_cairn, mut from_prometheus);
    loop {
        from_cairn = cairn.get_json(None, "/api/v1/metadata", &[]).1["data"].clone();
        from_prometheus = prometheus.get_json("/api/v1/metadata", &[]).1["data"].clone();
        let count = |v: &Value| v.as_object().map_or(0, |o| o.len());
        if count(&from_prometheus) > 50 && from_cairn == from_prometheus {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "metadata never converged: cairn has {} metrics, prometheus {}; only in prometheus: {:?}",
            count(&from_cairn),
            count(&from_prometheus),
            from_prometheus
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| from_cairn.get(k.as_str()) != Some(v))
                .map(|(k, _)| k.clone())
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for params in [
        vec![("metric", "prometheus_build_info")],
        vec![("metric", "no_such_metric")],
    ] {
        let cairn_data = cairn.get_json(None, "/api/v1/metadata", &params).1["data"].clone();
        let prom_data = prometheus.get_json("/api/v1/metadata", &params).1["data"].clone();
        assert_eq!(cairn_data, prom_data, "{params:?}");
    }
    // `limit` keeps that many metrics (which ones is Go map order in
    // Prometheus, so only the count is compared).
    for limit in ["0", "3"] {
        let params = [("limit", limit)];
        let cairn_data = cairn.get_json(None, "/api/v1/metadata", &params).1["data"].clone();
        let prom_data = prometheus.get_json("/api/v1/metadata", &params).1["data"].clone();
        assert_eq!(
            cairn_data.as_object().unwrap().len(),
            prom_data.as_object().unwrap().len(),
            "limit={limit}"
        );
    }
}
