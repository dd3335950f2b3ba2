//! A server process's CPU time and memory, from `/proc/<pid>/stat` and
//! `/proc/<pid>/status`, so the load generator's own work is not counted.

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of proc(5), 12th and 13th after the name.
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / CLOCK_TICKS_PER_SECOND
}

/// USER_HZ, 100 on every Linux architecture Cairn targets.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// (VmRSS, VmHWM) in bytes.
pub fn memory_bytes(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Waits until the process has used less than 5% of a core over half a
/// second (its background work after a burst, such as flushing buffers or
/// merging, is done), at most `max`. Returns the seconds waited.
pub fn wait_idle(pid: u32, max: std::time::Duration) -> f64 {
    let started = std::time::Instant::now();
    while started.elapsed() < max {
        let before = cpu_seconds(pid);
        std::thread::sleep(std::time::Duration::from_millis(500));
        if cpu_seconds(pid) - before < 0.025 {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}

/// Bytes of every regular file under `path` (not following symlinks).
pub fn disk_bytes(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| disk_bytes(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}
