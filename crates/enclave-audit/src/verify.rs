//! The streaming verifier.
//!
//! Feed it records in the order the trail holds them ([`Verifier::push`]) and the checkpoints
//! ([`Verifier::add_checkpoint`], before or right after the record they cover), then call
//! [`Verifier::finish`]. It stops at the first bad record and says what is wrong with it.
//!
//! Each record is checked against the *stored* hash of its predecessor, so one altered record
//! fails alone and its neighbours still pass; that, with a short look-ahead taken only after a
//! failure, lets the verifier tell the tamper kinds apart:
//!
//! | what was done | what the verifier sees | reported |
//! |---|---|---|
//! | a record's fields changed | its hash does not match; the next record links to its stored hash | [`Tamper::Modified`] at it |
//! | records deleted | a gap in `seq`; or, renumbered, the next record links to the stored hash at `seq + 1` | [`Tamper::Deleted`] at the first missing one |
//! | a record inserted | a repeated `seq`; or, renumbered, the next record belongs at this `seq`; or a record past the trusted head | [`Tamper::Inserted`] at it |
//! | records swapped | a later record belongs at this `seq` | [`Tamper::Reordered`] at the first one |
//! | the tail cut off | the trail ends before a checkpoint (or the trusted head) | [`Tamper::Truncated`] at the first missing one |
//! | records rewritten with recomputed hashes | a checkpoint's hash differs from the record's | [`Tamper::CheckpointMismatch`] at the checkpoint |
//! | a checkpoint forged or altered | its signature does not verify with the key | [`Tamper::BadSignature`] at the checkpoint |
//!
//! What a hash chain cannot show by itself: records appended after the last checkpoint, with
//! correct hashes, by someone who can write the database. The store closes that gap by passing
//! its own in-memory head ([`Verifier::expect_head`]); an outside verifier closes it by holding
//! a later checkpoint.

use crate::chain::{Chainer, Hash, GENESIS};
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::encoding::RecordView;
use std::collections::VecDeque;
use std::fmt;

/// How many records after a failure the verifier reads to classify it.
pub const LOOKAHEAD: usize = 64;

/// What is wrong with the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// The record's content does not match its hash, while the next record still links to it.
    Modified,
    /// Records are missing from here: `count` of them when known (a gap), `None` when the
    /// following records were renumbered to hide it.
    Deleted {
        /// How many are missing, if known.
        count: Option<u64>,
    },
    /// This record does not belong to the trail (a repeated sequence number, a record slipped
    /// in before renumbered followers, or one past the trusted head).
    Inserted,
    /// This record's place holds the record that belongs at `with` (and the other way round).
    Reordered {
        /// Where the record that belongs here was found.
        with: u64,
    },
    /// The record's hash does not match its content and predecessor, and the look-ahead does
    /// not show which kind of change caused it (several changes close together).
    Broken,
    /// The trail ends at `last` (or before the first record when `None`), before `expected`,
    /// a record a checkpoint or the trusted head vouches for.
    Truncated {
        /// The last record present.
        last: Option<u64>,
        /// The record that should still be there.
        expected: u64,
    },
    /// The checkpoint at this `seq` names a different hash than the record there: records up to
    /// it were rewritten and their hashes recomputed (or the checkpoint was moved).
    CheckpointMismatch,
    /// The checkpoint at this `seq` is not signed by the expected key.
    BadSignature,
    /// The checkpoint at this `seq` arrived after later records (export files list each
    /// checkpoint right after its record).
    CheckpointOutOfOrder,
    /// The starting checkpoint was not found in the export.
    MissingStart,
    /// Line `line` of an export is not a valid item.
    Malformed {
        /// 1-based line number.
        line: u64,
        /// Why.
        reason: String,
    },
}

/// The first bad place in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The sequence number of the first bad record (or the checkpoint, or the first missing
    /// record). For [`Tamper::Malformed`], the sequence number after the last good record.
    pub seq: u64,
    /// What is wrong.
    pub kind: Tamper,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seq;
        match &self.kind {
            Tamper::Modified => write!(f, "record {s} was modified (its hash does not match)"),
            Tamper::Deleted { count: Some(n) } => {
                write!(f, "{n} record(s) deleted, starting at {s}")
            }
            Tamper::Deleted { count: None } => write!(
                f,
                "record(s) deleted at {s} (the following records were renumbered)"
            ),
            Tamper::Inserted => write!(f, "record {s} was inserted"),
            Tamper::Reordered { with } => {
                write!(f, "records {s} and {with} were reordered")
            }
            Tamper::Broken => write!(
                f,
                "record {s} does not match its hash or its predecessor (several changes)"
            ),
            Tamper::Truncated { last, expected } => match last {
                Some(l) => write!(
                    f,
                    "the trail was truncated after record {l}; record {expected} is vouched for"
                ),
                None => write!(f, "the trail is empty; record {expected} is vouched for"),
            },
            Tamper::CheckpointMismatch => write!(
                f,
                "checkpoint {s} does not match the trail (records up to it were rewritten)"
            ),
            Tamper::BadSignature => write!(f, "checkpoint {s} has a bad signature"),
            Tamper::CheckpointOutOfOrder => write!(f, "checkpoint {s} is out of order"),
            Tamper::MissingStart => write!(f, "starting checkpoint {s} not found"),
            Tamper::Malformed { line, reason } => write!(f, "line {line} is malformed: {reason}"),
        }
    }
}

impl std::error::Error for Failure {}

/// The result of a verification that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records verified.
    pub records: u64,
    /// First and last sequence number verified (none if there were no records).
    pub first_seq: Option<u64>,
    /// Last sequence number verified.
    pub last_seq: Option<u64>,
    /// Chain hash of the last record (or of the starting point).
    pub head: Hash,
    /// Checkpoints whose signature and hash were checked (the starting one included).
    pub checkpoints: u64,
    /// The checkpoint verification started from, if not genesis.
    pub started_from: Option<u64>,
}

/// One record with owned fields (for diagnosis and parsed exports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Sequence number.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// How.
    pub auth: String,
    /// From where.
    pub source: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// Project.
    pub project: Option<String>,
    /// Outcome name.
    pub outcome: String,
    /// Request id.
    pub request_id: String,
    /// Canonical JSON detail.
    pub detail: String,
    /// The stored chain hash.
    pub hash: Hash,
}

impl OwnedRecord {
    /// Copies a view and its stored hash.
    pub fn from_view(r: &RecordView<'_>, hash: &Hash) -> OwnedRecord {
        OwnedRecord {
            seq: r.seq,
            at: r.at,
            actor: r.actor.to_string(),
            auth: r.auth.to_string(),
            source: r.source.to_string(),
            action: r.action.to_string(),
            resource: r.resource.to_string(),
            project: r.project.map(str::to_string),
            outcome: r.outcome.to_string(),
            request_id: r.request_id.to_string(),
            detail: r.detail.to_string(),
            hash: *hash,
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            auth: &self.auth,
            source: &self.source,
            action: &self.action,
            resource: &self.resource,
            project: self.project.as_deref(),
            outcome: &self.outcome,
            request_id: &self.request_id,
            detail: &self.detail,
        }
    }
}

struct Diagnosis {
    /// Stored hash before the failed record.
    prev: Hash,
    /// Stored hash before that one (and whether there was one).
    prev2: Option<Hash>,
    failed: OwnedRecord,
    followers: Vec<OwnedRecord>,
}

enum State {
    Running,
    Diagnosing(Box<Diagnosis>),
    Failed(Failure),
}

/// The streaming verifier. See the module documentation.
pub struct Verifier {
    key: PublicKey,
    key_id: String,
    chainer: Chainer,
    expected: u64,
    prev: Hash,
    prev2: Option<Hash>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    records: u64,
    checkpoints: u64,
    pending: VecDeque<Checkpoint>,
    head: Option<(u64, Hash)>,
    started_from: Option<u64>,
    state: State,
}

impl Verifier {
    /// A verifier that starts at genesis (record 1 follows 32 zero bytes) and trusts
    /// checkpoints signed by `key`.
    pub fn new(key: PublicKey) -> Verifier {
        Verifier {
            key_id: key.key_id(),
            key,
            chainer: Chainer::new(),
            expected: 1,
            prev: GENESIS,
            prev2: None,
            first_seq: None,
            last_seq: None,
            records: 0,
            checkpoints: 0,
            pending: VecDeque::new(),
            head: None,
            started_from: None,
            state: State::Running,
        }
    }

    /// A verifier that starts after `checkpoint` (whose signature is checked): the next record
    /// must be `checkpoint.seq + 1` and link to `checkpoint.hash`.
    pub fn from_checkpoint(key: PublicKey, checkpoint: &Checkpoint) -> Result<Verifier, Failure> {
        if !checkpoint.verify(&key) {
            return Err(Failure {
                seq: checkpoint.seq,
                kind: Tamper::BadSignature,
            });
        }
        let mut v = Verifier::new(key);
        v.expected = checkpoint.seq.saturating_add(1);
        v.prev = checkpoint.hash;
        v.started_from = Some(checkpoint.seq);
        v.checkpoints = 1;
        Ok(v)
    }

    /// Declares the trail's true head (from a source the verifier trusts, such as the live
    /// store's writer): records past `seq` are insertions, a trail ending before it is
    /// truncated, and the record at `seq` must have `hash`.
    pub fn expect_head(&mut self, seq: u64, hash: Hash) {
        self.head = Some((seq, hash));
    }

    /// The key id checkpoints must carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn fail(&mut self, seq: u64, kind: Tamper) -> Result<(), Failure> {
        let f = Failure { seq, kind };
        self.state = State::Failed(f.clone());
        Err(f)
    }

    /// Adds a checkpoint. Its signature is checked at once; its hash when the record it covers
    /// arrives (or at once, when that record was the last one pushed).
    pub fn add_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), Failure> {
        match &self.state {
            State::Failed(f) => return Err(f.clone()),
            State::Diagnosing(_) => return Ok(()),
            State::Running => {}
        }
        if !cp.verify(&self.key) {
            return self.fail(cp.seq, Tamper::BadSignature);
        }
        if Some(cp.seq) == self.started_from {
            return Ok(());
        }
        if Some(cp.seq) == self.last_seq {
            self.checkpoints += 1;
            if cp.hash != self.prev {
                return self.fail(cp.seq, Tamper::CheckpointMismatch);
            }
            return Ok(());
        }
        if cp.seq < self.expected {
            if self.started_from.is_some_and(|s| cp.seq < s) {
                // Before the starting point: its signature is fine, its records are not here.
                self.checkpoints += 1;
                return Ok(());
            }
            return self.fail(cp.seq, Tamper::CheckpointOutOfOrder);
        }
        let at = self.pending.partition_point(|p| p.seq < cp.seq);
        if self.pending.get(at).is_some_and(|p| p.seq == cp.seq) {
            if self.pending.get(at) != Some(cp) {
                return self.fail(cp.seq, Tamper::CheckpointMismatch);
            }
            return Ok(());
        }
        self.pending.insert(at, cp.clone());
        Ok(())
    }

    /// Feeds the next record with the hash stored beside it.
    #[inline]
    pub fn push(&mut self, r: &RecordView<'_>, stored: &Hash) -> Result<(), Failure> {
        match &mut self.state {
            State::Running => {}
            State::Failed(f) => return Err(f.clone()),
            State::Diagnosing(d) => {
                d.followers.push(OwnedRecord::from_view(r, stored));
                if d.followers.len() >= LOOKAHEAD {
                    return self.conclude();
                }
                return Ok(());
            }
        }
        if r.seq != self.expected {
            return self.out_of_sequence(r.seq);
        }
        if let Some((head_seq, _)) = self.head {
            if r.seq > head_seq {
                return self.fail(r.seq, Tamper::Inserted);
            }
        }
        let computed = self.chainer.hash(&self.prev, r);
        if computed != *stored {
            self.state = State::Diagnosing(Box::new(Diagnosis {
                prev: self.prev,
                prev2: self.prev2,
                failed: OwnedRecord::from_view(r, stored),
                followers: Vec::new(),
            }));
            return Ok(());
        }
        self.prev2 = Some(self.prev);
        self.prev = computed;
        self.expected = r.seq.saturating_add(1);
        self.last_seq = Some(r.seq);
        if self.first_seq.is_none() {
            self.first_seq = Some(r.seq);
        }
        self.records += 1;
        if let Some(front) = self.pending.front() {
            if front.seq == r.seq {
                let matches = front.hash == computed;
                self.pending.pop_front();
                self.checkpoints += 1;
                if !matches {
                    return self.fail(r.seq, Tamper::CheckpointMismatch);
                }
            }
        }
        if let Some((head_seq, head_hash)) = self.head {
            if r.seq == head_seq && head_hash != computed {
                return self.fail(r.seq, Tamper::CheckpointMismatch);
            }
        }
        Ok(())
    }

    fn out_of_sequence(&mut self, seq: u64) -> Result<(), Failure> {
        let expected = self.expected;
        if seq > expected {
            return self.fail(
                expected,
                Tamper::Deleted {
                    count: Some(seq - expected),
                },
            );
        }
        if Some(seq) == self.last_seq {
            return self.fail(seq, Tamper::Inserted);
        }
        self.fail(seq, Tamper::Reordered { with: expected })
    }

    fn conclude(&mut self) -> Result<(), Failure> {
        let state = std::mem::replace(&mut self.state, State::Running);
        let State::Diagnosing(d) = state else {
            self.state = state;
            return Ok(());
        };
        let (seq, kind) = diagnose(&mut self.chainer, &d);
        self.fail(seq, kind)
    }

    /// Ends the stream: checks that no checkpoint (or trusted head) vouches for records that
    /// are missing, and returns what was verified.
    pub fn finish(mut self) -> Result<Summary, Failure> {
        if let State::Diagnosing(_) = self.state {
            self.conclude()?;
        }
        if let State::Failed(f) = &self.state {
            return Err(f.clone());
        }
        let vouched = self
            .pending
            .back()
            .map(|c| c.seq)
            .into_iter()
            .chain(self.head.map(|h| h.0))
            .max();
        if let Some(v) = vouched {
            if self.last_seq.is_none_or(|l| l < v) && self.started_from.is_none_or(|s| s < v) {
                return Err(Failure {
                    seq: self.expected,
                    kind: Tamper::Truncated {
                        last: self.last_seq,
                        expected: v,
                    },
                });
            }
        }
        if let (None, Some((hs, hh))) = (self.last_seq, self.head) {
            if self.started_from == Some(hs) && hh != self.prev {
                return Err(Failure {
                    seq: hs,
                    kind: Tamper::CheckpointMismatch,
                });
            }
        }
        Ok(Summary {
            records: self.records,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            head: self.prev,
            checkpoints: self.checkpoints,
            started_from: self.started_from,
        })
    }
}

/// Classifies a hash mismatch at `d.failed` using the records after it.
fn diagnose(c: &mut Chainer, d: &Diagnosis) -> (u64, Tamper) {
    let k = d.failed.seq;
    let p = d.prev;
    let sk = d.failed.hash;
    let fits = |c: &mut Chainer, prev: &Hash, r: &OwnedRecord, seq: u64| {
        c.hash(prev, &r.view().with_seq(seq)) == r.hash
    };
    // This record fits one place earlier: the record before it was slipped in (with a hash
    // computed to fit) and this one and the rest renumbered.
    if let Some(p2) = d.prev2 {
        if k > 1 && fits(c, &p2, &d.failed, k - 1) {
            return (k - 1, Tamper::Inserted);
        }
    }
    let Some(f1) = d.followers.first() else {
        // The last record: nothing follows that could tell more.
        return (k, Tamper::Modified);
    };
    // The next record still links to this one's stored hash: this one's fields changed.
    if fits(c, &sk, f1, f1.seq) {
        return (k, Tamper::Modified);
    }
    let f1_belongs_here = fits(c, &p, f1, k);
    // Adjacent swap: the next record belongs here, and this one right after it.
    if f1_belongs_here && fits(c, &f1.hash, &d.failed, f1.seq) {
        return (k, Tamper::Reordered { with: f1.seq });
    }
    // The next record belongs here and the ones after it are shifted by one: this one was
    // slipped in and the rest renumbered.
    if f1_belongs_here {
        match d.followers.get(1) {
            None => return (k, Tamper::Inserted),
            Some(f2) if fits(c, &f1.hash, f2, f2.seq.saturating_sub(1)) => {
                return (k, Tamper::Inserted);
            }
            Some(_) => {}
        }
    }
    // The next record links to this one from one place further on: a record before this one
    // was deleted and the rest renumbered down.
    if fits(c, &sk, f1, f1.seq.saturating_add(1)) {
        return (k, Tamper::Deleted { count: None });
    }
    // A later record belongs here: swapped from further away.
    for f in d.followers.iter().skip(1) {
        if fits(c, &p, f, k) {
            return (k, Tamper::Reordered { with: f.seq });
        }
    }
    if f1_belongs_here {
        return (k, Tamper::Inserted);
    }
    (k, Tamper::Broken)
}
