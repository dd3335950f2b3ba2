//! The write-ahead log: numbered segment files of checksummed records under
//! `<tenant>/wal/`. Byte layout: `docs/format.md`, "WAL".
//!
//! [`WalWriter`] appends framed records with one `write(2)` per append (no
//! user-space buffering past the call), fsyncing per [`FsyncPolicy`]. A
//! batch of records is never split across segments. [`replay`] reads every
//! segment in order and repairs the log at the first corruption: the segment
//! is truncated at the last good record and later segments are deleted.

pub mod file;
pub mod record;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{FsyncPolicy, TsdbError};
pub use file::{OsFiles, SegmentFile, SegmentOpener};
pub use record::{Record, RecordType, RefExemplar, RefSample};

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TsdbError + '_ {
    move |source| TsdbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// Segment indexes present in `dir`, ascending. Names that are not a number
/// are ignored with a warning.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, TsdbError> {
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with(CHECKPOINT_PREFIX))
        {
            continue;
        }
        match name.to_str().and_then(|n| n.parse::<u64>().ok()) {
            Some(index) => indexes.push(index),
            None => {
                tracing::warn!(dir = %dir.display(), file = ?name, "ignoring unknown file in wal directory")
            }
        }
    }
    indexes.sort_unstable();
    Ok(indexes)
}

/// Name prefix of checkpoint files (`checkpoint.00000007`).
pub const CHECKPOINT_PREFIX: &str = "checkpoint.";

/// Path of the checkpoint holding everything up to segment `index`.
pub fn checkpoint_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{index:08}"))
}

/// Complete checkpoints in `dir` (ascending) and unfinished `.tmp` ones.
fn list_checkpoints(dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>), TsdbError> {
    let mut done = Vec::new();
    let mut unfinished = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX))
        else {
            continue;
        };
        match rest.parse::<u64>() {
            Ok(index) => done.push(index),
            Err(_) => unfinished.push(entry.path()),
        }
    }
    done.sort_unstable();
    Ok((done, unfinished))
}

/// The index of the newest complete checkpoint, if any.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<u64>, TsdbError> {
    if !dir.exists() {
        return Ok(None);
    }
    Ok(list_checkpoints(dir)?.0.last().copied())
}

/// Writes `framed` records as checkpoint `index` (through a `.tmp` file,
/// fsynced and renamed), then deletes segments `<= index` and older
/// checkpoints. A crash at any point leaves a log that replays to the same
/// head: the old segments, or the checkpoint (leftovers are removed by
/// [`replay`]).
pub fn write_checkpoint(
    dir: &Path,
    index: u64,
    framed_parts: impl IntoIterator<Item = Vec<u8>>,
) -> Result<(), TsdbError> {
    use std::io::Write;
    let final_path = checkpoint_path(dir, index);
    let mut tmp = final_path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).map_err(io_error(&tmp))?;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    for part in framed_parts {
        buffered.write_all(&part).map_err(io_error(&tmp))?;
    }
    let file = buffered
        .into_inner()
        .map_err(|e| io_error(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    crate::fault::point("checkpoint-before-rename");
    fs::rename(&tmp, &final_path).map_err(io_error(&tmp))?;
    sync_dir(dir)?;
    crate::fault::point("checkpoint-after-rename");
    remove_replaced(dir, index)
}

/// Deletes segments `<= index` and checkpoints older than `index`.
fn remove_replaced(dir: &Path, index: u64) -> Result<(), TsdbError> {
    let mut removed = false;
    for segment in list_segments(dir)? {
        if segment <= index {
            let path = segment_path(dir, segment);
            fs::remove_file(&path).map_err(io_error(&path))?;
            removed = true;
        }
    }
    let (done, unfinished) = list_checkpoints(dir)?;
    for older in done.into_iter().filter(|c| *c < index) {
        let path = checkpoint_path(dir, older);
        fs::remove_file(&path).map_err(io_error(&path))?;
        removed = true;
    }
    for path in unfinished {
        fs::remove_file(&path).map_err(io_error(&path))?;
        removed = true;
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

struct OpenSegment {
    index: u64,
    path: PathBuf,
    file: Box<dyn SegmentFile>,
    len: u64,
}

/// Appends records to the newest segment; segments are created lazily, so
/// opening and closing a database without writes creates no file.
pub struct WalWriter {
    dir: PathBuf,
    files: Arc<dyn SegmentOpener>,
    segment_size: u64,
    fsync: FsyncPolicy,
    current: Option<OpenSegment>,
    next_index: u64,
    /// Set when a failed write could not be undone: the log's tail is
    /// unknown, so further writes are refused until a restart repairs it.
    broken: bool,
    /// Set when the tenant was deleted: every later write fails.
    retired: bool,
    /// fsyncs of finished segments running in the background
    /// ([`FsyncPolicy::Never`] only), joined by [`WalWriter::sync`].
    pending_fsyncs: Vec<(PathBuf, std::thread::JoinHandle<std::io::Result<()>>)>,
}

impl WalWriter {
    /// Prepares writing into `dir` (created if missing) after its existing
    /// segments; the first write opens a new segment.
    pub fn open(dir: &Path, segment_size: u64, fsync: FsyncPolicy) -> Result<WalWriter, TsdbError> {
        WalWriter::open_with(dir, segment_size, fsync, Arc::new(OsFiles))
    }

    /// [`WalWriter::open`] creating segment files through `files`.
    pub fn open_with(
        dir: &Path,
        segment_size: u64,
        fsync: FsyncPolicy,
        files: Arc<dyn SegmentOpener>,
    ) -> Result<WalWriter, TsdbError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        // Never reuse an index a checkpoint already covers: such a segment
        // would be skipped (and deleted) by the next replay.
        let after_segments = list_segments(dir)?.last().map_or(0, |last| last + 1);
        let after_checkpoint = latest_checkpoint(dir)?.map_or(0, |c| c + 1);
        let next_index = after_segments.max(after_checkpoint);
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            files,
            segment_size: segment_size.max(1),
            fsync,
            current: None,
            next_index,
            broken: false,
            retired: false,
            pending_fsyncs: Vec::new(),
        })
    }

    /// Writes framed records (one or more) as one unit; returns once they are
    /// in the OS (and on disk with [`FsyncPolicy::Always`]). On error the
    /// segment is cut back to its previous length.
    pub fn write(&mut self, framed: &[u8]) -> Result<(), TsdbError> {
        if framed.is_empty() {
            return Ok(());
        }
        if self.retired {
            return Err(TsdbError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("the tenant was deleted"),
            });
        }
        if self.broken {
            return Err(TsdbError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("wal is unwritable after an earlier failed write"),
            });
        }
        let full = self
            .current
            .as_ref()
            .is_some_and(|s| s.len > 0 && s.len + framed.len() as u64 > self.segment_size);
        if full {
            self.finish_segment()?;
        }
        if self.current.is_none() {
            self.start_segment()?;
        }
        let fsync = self.fsync;
        let segment = self.current.as_mut().expect("a segment was started above");
        let result = segment.file.append(framed).and_then(|()| match fsync {
            FsyncPolicy::Always => segment.file.sync_data(),
            FsyncPolicy::Never => Ok(()),
        });
        match result {
            Ok(()) => {
                segment.len += framed.len() as u64;
                Ok(())
            }
            Err(source) => {
                if let Err(undo) = segment.file.set_len(segment.len) {
                    tracing::error!(segment = segment.index, error = %undo, "cannot undo a failed wal write; refusing writes until restart");
                    self.broken = true;
                }
                Err(TsdbError::Io {
                    path: segment.path.clone(),
                    source,
                })
            }
        }
    }

    fn start_segment(&mut self) -> Result<(), TsdbError> {
        let path = segment_path(&self.dir, self.next_index);
        let file = self.files.create(&path).map_err(io_error(&path))?;
        // Adopt the file before syncing the directory: if that sync fails,
        // the next write reuses this (empty) segment instead of failing on
        // a name that already exists.
        self.current = Some(OpenSegment {
            index: self.next_index,
            path,
            file,
            len: 0,
        });
        self.next_index += 1;
        // The new name must survive a power loss too.
        sync_dir(&self.dir)
    }

    /// fsyncs and closes the current segment. Under [`FsyncPolicy::Never`]
    /// the fsync runs on a background thread so appends do not wait for it
    /// (Prometheus does the same); under `Always` every write was already
    /// synced, so the final fsync is cheap and done inline.
    fn finish_segment(&mut self) -> Result<(), TsdbError> {
        let Some(mut segment) = self.current.take() else {
            return Ok(());
        };
        self.reap_fsyncs();
        if self.fsync == FsyncPolicy::Never {
            let mut file = segment.file;
            let spawned = std::thread::Builder::new()
                .name("cairn-wal-fsync".to_string())
                .spawn(move || file.sync_all());
            match spawned {
                Ok(handle) => {
                    self.pending_fsyncs.push((segment.path, handle));
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot start a background fsync; segment left to the OS");
                    return Ok(());
                }
            }
        }
        segment.file.sync_all().map_err(io_error(&segment.path))
    }

    /// Logs and forgets background fsyncs that have finished.
    fn reap_fsyncs(&mut self) {
        let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_fsyncs)
            .into_iter()
            .partition(|(_, handle)| handle.is_finished());
        self.pending_fsyncs = running;
        for (path, handle) in finished {
            if let Ok(Err(error)) = handle.join() {
                tracing::warn!(path = %path.display(), %error, "background fsync of a wal segment failed");
            }
        }
    }

    /// Closes the current segment so that the next write starts a new one;
    /// returns the index of the newest closed segment (every segment up to
    /// it is complete), or `None` if no segment was ever started.
    pub fn cut_segment(&mut self) -> Result<Option<u64>, TsdbError> {
        self.finish_segment()?;
        Ok(self.next_index.checked_sub(1))
    }

    /// Refuses every later write (the tenant's data is being deleted), so
    /// a request still holding the database cannot write into a directory
    /// that a new tenant of the same name may reuse.
    pub fn retire(&mut self) {
        self.retired = true;
        self.current = None;
    }

    /// fsyncs the current segment (on clean shutdown).
    pub fn sync(&mut self) -> Result<(), TsdbError> {
        for (path, handle) in std::mem::take(&mut self.pending_fsyncs) {
            match handle.join() {
                Ok(result) => result.map_err(io_error(&path))?,
                Err(_) => {
                    tracing::error!(path = %path.display(), "background fsync thread panicked")
                }
            }
        }
        if let Some(segment) = &mut self.current {
            segment.file.sync_all().map_err(io_error(&segment.path))?;
        }
        Ok(())
    }
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: u64,
    pub records: u64,
    /// The checkpoint read before the segments, if any.
    pub checkpoint: Option<u64>,
    /// The corruption that was repaired, if any.
    pub corruption: Option<(u64, u64, String)>,
}

/// Why reading stopped inside a segment.
#[derive(Debug)]
struct Corruption {
    offset: u64,
    reason: String,
}

/// Reads every record in `dir` in order, calling `apply` for each. At the
/// first corrupt or torn record the log is repaired (truncated there, later
/// segments deleted) with a warning, and replay ends successfully. A missing
/// directory is an empty log.
pub fn replay(dir: &Path, mut apply: impl FnMut(Record)) -> Result<ReplayReport, TsdbError> {
    let mut report = ReplayReport::default();
    if !dir.exists() {
        return Ok(report);
    }
    let checkpoint = latest_checkpoint(dir)?;
    if let Some(index) = checkpoint {
        // Leftovers of an interrupted checkpoint go first.
        remove_replaced(dir, index)?;
        let path = checkpoint_path(dir, index);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        report.checkpoint = Some(index);
        if let Err(corruption) = read_segment(&bytes, &mut |record| {
            report.records += 1;
            apply(record);
        }) {
            tracing::error!(
                checkpoint = index,
                offset = corruption.offset,
                reason = %corruption.reason,
                "wal checkpoint corrupt: records after the offset are lost"
            );
        }
    } else {
        let (_, unfinished) = list_checkpoints(dir)?;
        for path in unfinished {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    let segments = list_segments(dir)?;
    for (position, &index) in segments.iter().enumerate() {
        let path = segment_path(dir, index);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        report.segments += 1;
        let Err(corruption) = read_segment(&bytes, &mut |record| {
            report.records += 1;
            apply(record);
        }) else {
            continue;
        };
        tracing::warn!(
            segment = index,
            offset = corruption.offset,
            reason = %corruption.reason,
            later_segments_deleted = segments.len() - position - 1,
            "wal corruption: truncating the log at the last good record"
        );
        repair(dir, &path, corruption.offset, &segments[position + 1..])?;
        report.corruption = Some((index, corruption.offset, corruption.reason));
        break;
    }
    Ok(report)
}

fn repair(dir: &Path, path: &Path, offset: u64, later: &[u64]) -> Result<(), TsdbError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    file.set_len(offset).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    for &index in later {
        let later_path = segment_path(dir, index);
        fs::remove_file(&later_path).map_err(io_error(&later_path))?;
    }
    sync_dir(dir)
}

/// Decodes the records of one segment; stops at the first bad one.
fn read_segment(bytes: &[u8], apply: &mut dyn FnMut(Record)) -> Result<(), Corruption> {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let corrupt = |reason: String| Corruption {
            offset: offset as u64,
            reason,
        };
        let rest = &bytes[offset..];
        if rest.len() < record::HEADER_LEN {
            return Err(corrupt(format!(
                "torn record header ({} bytes)",
                rest.len()
            )));
        }
        let Some(record_type) = RecordType::from_byte(rest[0]) else {
            return Err(corrupt(format!("unknown record type {}", rest[0])));
        };
        let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        let stored_crc = u32::from_le_bytes(rest[5..9].try_into().expect("4 bytes"));
        if len > record::MAX_PAYLOAD_LEN || len > rest.len() - record::HEADER_LEN {
            return Err(corrupt(format!(
                "record length {len} exceeds the {} bytes left",
                rest.len() - record::HEADER_LEN
            )));
        }
        let payload = &rest[record::HEADER_LEN..record::HEADER_LEN + len];
        if record::checksum(&rest[..5], payload) != stored_crc {
            return Err(corrupt("checksum mismatch".to_string()));
        }
        let decoded = record::decode(record_type, payload)
            .map_err(|e| corrupt(format!("bad record content: {}", e.0)))?;
        apply(decoded);
        offset += record::HEADER_LEN + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn samples_record(id: u64, t: i64) -> Vec<u8> {
        let mut out = Vec::new();
        record::encode(
            &Record::Samples(vec![RefSample { id, t, v: t as f64 }]),
            &mut out,
        );
        out
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Xor(u8),
        Truncate,
        Append(Vec<u8>),
    }

    fn replay_all(dir: &Path) -> (Vec<Record>, ReplayReport) {
        let mut records = Vec::new();
        let report = replay(dir, |r| records.push(r)).unwrap();
        (records, report)
    }

    #[test]
    fn records_are_never_split_across_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let one = samples_record(1, 1).len() as u64;
        let mut writer = WalWriter::open(tmp.path(), one * 2 + 1, FsyncPolicy::Never).unwrap();
        for t in 0..5 {
            writer.write(&samples_record(1, t)).unwrap();
        }
        assert_eq!(list_segments(tmp.path()).unwrap(), vec![0, 1, 2]);
        for index in [0, 1] {
            let len = fs::metadata(segment_path(tmp.path(), index)).unwrap().len();
            assert_eq!(len, one * 2);
        }
        let (records, _) = replay_all(tmp.path());
        assert_eq!(records.len(), 5);
        // A reopened writer starts a new segment after the existing ones.
        let mut reopened = WalWriter::open(tmp.path(), 1 << 20, FsyncPolicy::Always).unwrap();
        reopened.write(&samples_record(1, 9)).unwrap();
        assert_eq!(list_segments(tmp.path()).unwrap(), vec![0, 1, 2, 3]);
    }

    /// Corruption cases after Prometheus's `TestWALRepair_ReadingError`:
    /// each damages the log written by `write_log` and states how many
    /// records survive and which segments remain.
    #[test]
    fn corruption_table_cuts_at_the_last_good_record() {
        let record_len = samples_record(1, 0).len() as u64;
        // Three segments with 4 records each.
        let write_log = |dir: &Path| {
            let mut writer = WalWriter::open(dir, record_len * 4, FsyncPolicy::Never).unwrap();
            for t in 0..12 {
                writer.write(&samples_record(1, t)).unwrap();
            }
        };
        type Damage = fn(&Path, u64);
        let cases: Vec<(&str, Damage, u64, Vec<u64>)> = vec![
            ("intact", |_, _| {}, 12, vec![0, 1, 2]),
            (
                "torn last record",
                |dir, len| {
                    let path = segment_path(dir, 2);
                    let file = OpenOptions::new().write(true).open(&path).unwrap();
                    file.set_len(len * 4 - 3).unwrap();
                },
                11,
                vec![0, 1, 2],
            ),
            (
                "torn header",
                |dir, _| {
                    let path = segment_path(dir, 2);
                    let mut file = OpenOptions::new().append(true).open(path).unwrap();
                    file.write_all(&[2, 30, 0]).unwrap();
                },
                12,
                vec![0, 1, 2],
            ),
            (
                "bad checksum in the middle segment",
                |dir, len| {
                    let path = segment_path(dir, 1);
                    let mut bytes = fs::read(&path).unwrap();
                    bytes[(len + 6) as usize] ^= 0x55; // crc of record 2
                    fs::write(path, bytes).unwrap();
                },
                5,
                vec![0, 1],
            ),
            (
                "bad content byte",
                |dir, len| {
                    let path = segment_path(dir, 0);
                    let mut bytes = fs::read(&path).unwrap();
                    bytes[(len * 2 + 12) as usize] ^= 0x01; // payload of record 3
                    fs::write(path, bytes).unwrap();
                },
                2,
                vec![0],
            ),
            (
                "bad length",
                |dir, len| {
                    let path = segment_path(dir, 2);
                    let mut bytes = fs::read(&path).unwrap();
                    bytes[(len * 3 + 1) as usize] = 0xff; // length of the last record
                    bytes[(len * 3 + 2) as usize] = 0xff;
                    fs::write(path, bytes).unwrap();
                },
                11,
                vec![0, 1, 2],
            ),
            (
                "shorter length",
                |dir, len| {
                    let path = segment_path(dir, 2);
                    let mut bytes = fs::read(&path).unwrap();
                    bytes[(len + 1) as usize] -= 1; // length of record 2 of the segment
                    fs::write(path, bytes).unwrap();
                },
                9,
                vec![0, 1, 2],
            ),
            (
                "zero tail",
                |dir, _| {
                    let path = segment_path(dir, 2);
                    let mut file = OpenOptions::new().append(true).open(path).unwrap();
                    file.write_all(&[0u8; 4096]).unwrap();
                },
                12,
                vec![0, 1, 2],
            ),
            (
                "garbage tail",
                |dir, _| {
                    let path = segment_path(dir, 2);
                    let mut file = OpenOptions::new().append(true).open(path).unwrap();
                    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
                    file.write_all(&garbage).unwrap();
                },
                12,
                vec![0, 1, 2],
            ),
            (
                "empty last segment",
                |dir, _| {
                    File::create(segment_path(dir, 3)).unwrap();
                },
                12,
                vec![0, 1, 2, 3],
            ),
        ];
        for (name, damage, surviving, segments_left) in cases {
            let tmp = tempfile::tempdir().unwrap();
            write_log(tmp.path());
            damage(tmp.path(), record_len);
            let (records, report) = replay_all(tmp.path());
            assert_eq!(records.len() as u64, surviving, "{name}: records");
            assert_eq!(
                list_segments(tmp.path()).unwrap(),
                segments_left,
                "{name}: segments"
            );
            // The repaired log reads clean, and the surviving records are the first ones.
            let (again, second) = replay_all(tmp.path());
            assert_eq!(again, records, "{name}: second replay");
            assert_eq!(second.corruption, None, "{name}: still corrupt");
            for (t, record) in records.iter().enumerate() {
                let Record::Samples(samples) = record else {
                    panic!("{name}: unexpected record")
                };
                assert_eq!(samples[0].t, t as i64, "{name}: order");
            }
            let expect_corruption = !matches!(name, "intact" | "empty last segment");
            assert_eq!(
                report.corruption.is_some(),
                expect_corruption,
                "{name}: report"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Whatever the bytes, replay succeeds, keeps a prefix of the good
        /// records, and leaves a log that replays cleanly.
        #[test]
        fn any_damage_keeps_a_prefix_and_never_fails(
            records in 1usize..12,
            damage_at in any::<proptest::sample::Index>(),
            damage in prop_oneof![
                any::<u8>().prop_map(Damage::Xor),
                Just(Damage::Truncate),
                proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
            ],
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let mut writer = WalWriter::open(tmp.path(), 1 << 20, FsyncPolicy::Never).unwrap();
            for t in 0..records {
                writer.write(&samples_record(t as u64, t as i64)).unwrap();
            }
            let path = segment_path(tmp.path(), 0);
            let mut bytes = fs::read(&path).unwrap();
            let at = damage_at.index(bytes.len());
            match damage {
                Damage::Xor(mask) => bytes[at] ^= mask.max(1),
                Damage::Truncate => bytes.truncate(at),
                Damage::Append(garbage) => bytes.extend_from_slice(&garbage),
            }
            fs::write(&path, &bytes).unwrap();
            let (got, _) = replay_all(tmp.path());
            prop_assert!(got.len() <= records);
            for (t, record) in got.iter().enumerate() {
                prop_assert_eq!(record, &Record::Samples(vec![RefSample { id: t as u64, t: t as i64, v: t as f64 }]));
            }
            let (again, report) = replay_all(tmp.path());
            prop_assert_eq!(again, got);
            prop_assert_eq!(report.corruption, None);
        }

        #[test]
        fn write_then_replay_returns_every_record(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u64..1000, any::<i64>(), any::<u64>()), 1..20),
                1..20,
            ),
            segment_size in 64u64..4096,
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let mut writer = WalWriter::open(tmp.path(), segment_size, FsyncPolicy::Never).unwrap();
            let mut expected = Vec::new();
            for batch in &batches {
                let record = Record::Samples(batch.iter().map(|&(id, t, bits)| RefSample { id, t, v: f64::from_bits(bits) }).collect());
                let mut framed = Vec::new();
                record::encode(&record, &mut framed);
                writer.write(&framed).unwrap();
                expected.push(batch.clone());
            }
            let (records, report) = replay_all(tmp.path());
            prop_assert_eq!(report.corruption, None);
            let got: Vec<Vec<(u64, i64, u64)>> = records.into_iter().map(|r| match r {
                Record::Samples(s) => s.into_iter().map(|s| (s.id, s.t, s.v.to_bits())).collect(),
                other => panic!("unexpected {other:?}"),
            }).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
