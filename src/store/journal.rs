//! The journal: every notable decision, command and action, with time,
//! epoch, actor, reason and outcome, appended as one JSON line each to
//! `journal.jsonl` in the state directory and fsynced. When the file passes
//! its size limit it is renamed to `journal.1.jsonl` (replacing the older
//! one) and a new file begins. The newest entries are also kept in memory
//! for the API and the status page.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::StoreError;

/// Entries kept in memory for the API.
const RECENT: usize = 1000;
/// The size at which the journal file is rotated.
pub const DEFAULT_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Grows by one per entry, across restarts and rotations.
    pub seq: u64,
    /// Milliseconds since 1970.
    pub at: u64,
    /// The same instant, RFC 3339.
    pub time: String,
    pub epoch: u64,
    /// `engine`, or the operator who gave a command.
    pub actor: String,
    /// `decision`, `command`, `action` or `notification`.
    pub kind: String,
    /// What happened, in a word or two: `failed_over`, `answers_switched`...
    pub event: String,
    pub summary: String,
    pub reasons: Vec<String>,
    /// `ok`, `refused`, or `failed: why`.
    pub outcome: String,
}

/// A journal entry before it is numbered.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub at: u64,
    pub epoch: u64,
    pub actor: String,
    pub kind: &'static str,
    pub event: String,
    pub summary: String,
    pub reasons: Vec<String>,
    pub outcome: String,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    size: u64,
    limit: u64,
    next_seq: u64,
    recent: VecDeque<JournalEntry>,
}

impl Journal {
    pub const FILE: &'static str = "journal.jsonl";
    pub const ROTATED: &'static str = "journal.1.jsonl";

    /// Opens (or creates) the journal in `dir`, reading back its entries to
    /// continue the numbering after `after` at least (the last number the
    /// stored state knows of). A last line cut short by a crash is cut off
    /// the file, so the next entry starts on a line of its own.
    pub fn open(dir: &Path, limit: u64, after: u64) -> Result<Self, StoreError> {
        let path = dir.join(Self::FILE);
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(write_error)?;
        let mut recent = VecDeque::new();
        let mut next_seq = after + 1;
        for file in [dir.join(Self::ROTATED), path.clone()] {
            let text = match fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Read { path: file, source }),
            };
            let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < text.len() {
                warn!(
                    "{}: cutting off a last line left incomplete by a crash ({} bytes)",
                    file.display(),
                    text.len() - complete
                );
                OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .and_then(|f| {
                        f.set_len(complete as u64)?;
                        f.sync_all()
                    })
                    .map_err(|source| StoreError::Write {
                        path: file.clone(),
                        source,
                    })?;
            }
            let text = String::from_utf8_lossy(&text[..complete]);
            for (n, line) in text.lines().enumerate() {
                match serde_json::from_str::<JournalEntry>(line) {
                    Ok(entry) => {
                        next_seq = next_seq.max(entry.seq + 1);
                        recent.push_back(entry);
                        if recent.len() > RECENT {
                            recent.pop_front();
                        }
                    }
                    // A damaged line in the middle: the rest stands.
                    Err(e) => warn!(
                        "{}:{}: skipping an unreadable journal line: {e}",
                        file.display(),
                        n + 1
                    ),
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(write_error)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            file,
            size,
            limit,
            next_seq,
            recent,
        })
    }

    /// The last sequence number handed out (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Appends an entry durably and returns it numbered.
    pub fn append(&mut self, new: NewEntry) -> Result<JournalEntry, StoreError> {
        let entry = JournalEntry {
            seq: self.next_seq,
            at: new.at,
            time: crate::engine::utc(new.at),
            epoch: new.epoch,
            actor: new.actor,
            kind: new.kind.to_string(),
            event: new.event,
            summary: new.summary,
            reasons: new.reasons,
            outcome: new.outcome,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        if self.size > 0 && self.size + line.len() as u64 > self.limit {
            self.rotate()?;
        }
        let fail = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            // A part written (a full disk) is cut off again, so the next
            // entry starts on a line of its own.
            let _ = self.file.set_len(self.size);
            return Err(fail(e));
        }
        // Written: the number is used, even if it cannot be made durable.
        self.size += line.len() as u64;
        self.next_seq += 1;
        self.recent.push_back(entry.clone());
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        self.file.sync_data().map_err(fail)?;
        Ok(entry)
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        let rotated = self.path.with_file_name(Self::ROTATED);
        let fail = |source| StoreError::Write {
            path: rotated.clone(),
            source,
        };
        fs::rename(&self.path, &rotated).map_err(fail)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(fail)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Entries after `seq`, oldest first, at most `limit`.
    pub fn since(&self, seq: u64, limit: usize) -> Vec<JournalEntry> {
        self.recent
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The entries kept in memory, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &JournalEntry> {
        self.recent.iter()
    }

    /// The newest `n` entries, newest first.
    pub fn latest(&self, n: usize) -> Vec<JournalEntry> {
        self.recent.iter().rev().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(summary: &str) -> NewEntry {
        NewEntry {
            at: 1_795_305_600_000,
            epoch: 1,
            actor: "engine".into(),
            kind: "decision",
            event: "failed_over".into(),
            summary: summary.into(),
            reasons: vec!["because".into()],
            outcome: "ok".into(),
        }
    }

    #[test]
    fn numbering_continues_after_reopen_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), DEFAULT_LIMIT, 0).unwrap();
        assert_eq!(journal.append(entry("one")).unwrap().seq, 1);
        assert_eq!(journal.append(entry("two")).unwrap().seq, 2);
        drop(journal);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(Journal::FILE))
            .unwrap();
        file.write_all(b"{\"seq\": 3, \"at\"").unwrap();
        let mut journal = Journal::open(dir.path(), DEFAULT_LIMIT, 0).unwrap();
        assert_eq!(journal.since(0, 10).len(), 2);
        let three = journal.append(entry("three")).unwrap();
        assert_eq!(three.seq, 3);
        assert_eq!(three.time, "2026-11-22T00:00:00Z");
        assert_eq!(journal.since(2, 10), vec![three]);
        drop(journal);
        // The torn line was cut off, not glued to the next entry: every
        // line of the file reads back, numbered without a repeat.
        let text = fs::read_to_string(dir.path().join(Journal::FILE)).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<JournalEntry>(l).expect(l).seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn numbering_never_repeats_when_the_journal_files_are_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), DEFAULT_LIMIT, 0).unwrap();
        journal.append(entry("one")).unwrap();
        journal.append(entry("two")).unwrap();
        let stored = journal.last_seq();
        drop(journal);
        fs::remove_file(dir.path().join(Journal::FILE)).unwrap();
        let mut journal = Journal::open(dir.path(), DEFAULT_LIMIT, stored).unwrap();
        assert_eq!(journal.append(entry("three")).unwrap().seq, 3);
    }

    #[test]
    fn a_full_journal_rotates_and_keeps_counting() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 600, 0).unwrap();
        for i in 0..10 {
            journal.append(entry(&format!("entry {i}"))).unwrap();
        }
        assert!(dir.path().join(Journal::ROTATED).exists());
        let size = fs::metadata(dir.path().join(Journal::FILE)).unwrap().len();
        assert!(size <= 600, "{size}");
        drop(journal);
        let mut journal = Journal::open(dir.path(), 600, 0).unwrap();
        assert_eq!(journal.append(entry("after")).unwrap().seq, 11);
        assert_eq!(journal.latest(1)[0].summary, "after");
    }
}
