//! Named crash points for tests. When the environment variable
//! `CAIRN_TSDB_FAULT` equals a point's name, the process prints
//! `fault-point <name>` on stdout and waits there, for the test that
//! started it to `kill -9` it at exactly that moment. Unset (always, in
//! production), a point costs one environment lookup, and points sit only
//! on the block, compaction and checkpoint paths, never on appends.

/// Stops the process at `name` if the test asked for it.
pub fn point(name: &str) {
    let Some(wanted) = std::env::var_os("CAIRN_TSDB_FAULT") else {
        return;
    };
    if wanted != name {
        return;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "fault-point {name}");
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
