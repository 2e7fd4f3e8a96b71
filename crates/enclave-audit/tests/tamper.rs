//! Every tamper kind, on the in-memory verifier and on a round-tripped export.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::manual_is_multiple_of,
    missing_docs
)]

use enclave_audit::export::{checkpoint_line, header_line, parse_line, record_line, verify_lines};
use enclave_audit::{
    canonical_detail, Chainer, Checkpoint, CheckpointSigner, Failure, Hash, OwnedRecord, PublicKey,
    RecordView, SigningKey, Summary, Tamper, Verifier, GENESIS,
};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::Timestamp;
use serde_json::json;

fn record(i: u64) -> AuditRecord {
    let mut detail = serde_json::Map::new();
    detail.insert("n".into(), json!(i));
    detail.insert("name".into(), json!(format!("user \"{i}\"\n")));
    detail.insert("a".into(), json!({"z": [1, 2.5, null], "b": true}));
    AuditRecord {
        at: Timestamp(1_700_000_000 + i as i64),
        actor: format!("alice{}", i % 3),
        auth: "session".into(),
        source: "127.0.0.1".into(),
        action: "user.create".into(),
        resource: format!("user:u{i}"),
        project: (i % 2 == 0).then(|| "fraud".to_string()),
        outcome: if i % 5 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        request_id: format!("req_{i}"),
        detail,
    }
}

/// A trail: records with their stored hashes, checkpoints every `every` records.
struct Trail {
    records: Vec<OwnedRecord>,
    checkpoints: Vec<Checkpoint>,
    key: PublicKey,
    signer: SigningKey,
}

fn trail(n: u64, every: u64) -> Trail {
    let (signer, _) = SigningKey::generate().unwrap();
    let mut c = Chainer::new();
    let mut prev = GENESIS;
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    for seq in 1..=n {
        let r = record(seq);
        let detail = canonical_detail(&r.detail);
        let view = RecordView::of(seq, &r, &detail);
        prev = c.hash(&prev, &view);
        records.push(OwnedRecord::from_view(&view, &prev));
        if seq % every == 0 {
            checkpoints.push(Checkpoint::sign(&signer, seq, prev, r.at));
        }
    }
    Trail {
        records,
        checkpoints,
        key: signer.public_key(),
        signer,
    }
}

/// Recomputes the stored hashes from `from` on (an attacker who knows the algorithm).
fn rehash(records: &mut [OwnedRecord], from: usize) {
    let mut c = Chainer::new();
    let mut prev = if from == 0 {
        GENESIS
    } else {
        records[from - 1].hash
    };
    for r in &mut records[from..] {
        prev = c.hash(&prev, &r.view());
        r.hash = prev;
    }
}

fn verify_mem(
    key: PublicKey,
    records: &[OwnedRecord],
    cps: &[Checkpoint],
    start: Option<&Checkpoint>,
) -> Result<Summary, Failure> {
    let mut v = match start {
        Some(cp) => Verifier::from_checkpoint(key, cp)?,
        None => Verifier::new(key),
    };
    for cp in cps {
        v.add_checkpoint(cp)?;
    }
    for r in records {
        v.push(&r.view(), &r.hash)?;
    }
    v.finish()
}

fn export(records: &[OwnedRecord], cps: &[Checkpoint], key: &PublicKey) -> String {
    let mut out = header_line(key);
    out.push('\n');
    for r in records {
        out.push_str(&record_line(&r.view(), &r.hash));
        out.push('\n');
        for cp in cps.iter().filter(|c| c.seq == r.seq) {
            out.push_str(&checkpoint_line(cp, false));
            out.push('\n');
        }
    }
    // Checkpoints whose records are missing go at the end (what an export of a trail whose
    // records were deleted, but not its checkpoints, looks like).
    let last = records.last().map_or(0, |r| r.seq);
    for cp in cps.iter().filter(|c| c.seq > last) {
        out.push_str(&checkpoint_line(cp, false));
        out.push('\n');
    }
    out
}

/// Runs both verifiers and checks they agree.
fn check(t: &Trail, records: &[OwnedRecord], cps: &[Checkpoint]) -> Result<Summary, Failure> {
    let mem = verify_mem(t.key, records, cps, None);
    let text = export(records, cps, &t.key);
    let exp = verify_lines(text.lines(), &t.key, None);
    assert_eq!(mem, exp, "in-memory and export verification agree");
    mem
}

fn fails(t: &Trail, records: &[OwnedRecord], cps: &[Checkpoint]) -> Failure {
    check(t, records, cps).expect_err("tampering is detected")
}

#[test]
fn an_untouched_trail_verifies() {
    let t = trail(300, 100);
    let s = check(&t, &t.records, &t.checkpoints).unwrap();
    assert_eq!(s.records, 300);
    assert_eq!(s.first_seq, Some(1));
    assert_eq!(s.last_seq, Some(300));
    assert_eq!(s.checkpoints, 3);
    assert_eq!(s.head, t.records[299].hash);
    // Empty trail.
    assert_eq!(check(&t, &[], &[]).unwrap().records, 0);
}

#[test]
fn export_round_trips_every_field() {
    let t = trail(4, 2);
    let text = export(&t.records, &t.checkpoints, &t.key);
    let items: Vec<_> = text.lines().map(|l| parse_line(l).unwrap()).collect();
    assert_eq!(items.len(), 1 + 4 + 2);
    let back: Vec<OwnedRecord> = items
        .into_iter()
        .filter_map(|i| match i {
            enclave_audit::export::Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(back, t.records);
    // The detail is canonical: keys sorted at every level.
    assert!(
        text.contains(r#""detail":{"a":{"b":true,"z":[1,2.5,null]},"n":1,"name":"user \"1\"\n"}"#)
    );
}

#[test]
fn a_modified_record_is_named() {
    let t = trail(50, 1000);
    let mut r = t.records.clone();
    r[20].actor = "mallory".into();
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 21,
            kind: Tamper::Modified
        }
    );
    // The detail, the project, the time: each is covered.
    let mut r = t.records.clone();
    r[9].detail = r#"{"n":999}"#.into();
    assert_eq!(fails(&t, &r, &[]).seq, 10);
    let mut r = t.records.clone();
    r[9].project = None;
    assert_eq!(fails(&t, &r, &[]).kind, Tamper::Modified);
    let mut r = t.records.clone();
    r[49].at += 1;
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 50,
            kind: Tamper::Modified
        }
    );
}

#[test]
fn deleted_records_are_named() {
    let t = trail(50, 1000);
    // A plain delete leaves a gap.
    let mut r = t.records.clone();
    r.drain(10..13);
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 11,
            kind: Tamper::Deleted { count: Some(3) }
        }
    );
    // The first record.
    let r = t.records[1..].to_vec();
    assert_eq!(fails(&t, &r, &[]).seq, 1);
    // Deleted and the rest renumbered to hide the gap.
    let mut r = t.records.clone();
    r.remove(30);
    for x in &mut r[30..] {
        x.seq -= 1;
    }
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 31,
            kind: Tamper::Deleted { count: None }
        }
    );
}

#[test]
fn inserted_records_are_named() {
    let t = trail(50, 1000);
    let forged = {
        let mut f = t.records[5].clone();
        f.actor = "mallory".into();
        f
    };
    // A repeated sequence number.
    let mut r = t.records.clone();
    r.insert(6, forged.clone());
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 6,
            kind: Tamper::Inserted
        }
    );
    // Slipped in and the rest renumbered.
    let mut r = t.records.clone();
    let mut x = forged.clone();
    x.seq = 7;
    r.insert(6, x);
    for y in &mut r[7..] {
        y.seq += 1;
    }
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 7,
            kind: Tamper::Inserted
        }
    );
    // Slipped in with a hash computed to fit, the rest renumbered (hashes left alone).
    let mut r = t.records.clone();
    let mut x = forged.clone();
    x.seq = 7;
    x.hash = Chainer::new().hash(&r[5].hash, &x.view());
    r.insert(6, x);
    for y in &mut r[7..] {
        y.seq += 1;
    }
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 7,
            kind: Tamper::Inserted
        }
    );
    // Appended past the head the verifier trusts (an export cannot know it; the store can).
    let mut r = t.records.clone();
    let mut x = forged;
    x.seq = 51;
    x.hash = Chainer::new().hash(&r[49].hash, &x.view());
    r.push(x);
    let mut v = Verifier::new(t.key);
    v.expect_head(50, t.records[49].hash);
    let f = r
        .iter()
        .try_for_each(|x| v.push(&x.view(), &x.hash))
        .unwrap_err();
    assert_eq!(
        f,
        Failure {
            seq: 51,
            kind: Tamper::Inserted
        }
    );
}

#[test]
fn reordered_records_are_named() {
    let t = trail(50, 1000);
    // Adjacent rows swap places (their seq values swapped).
    let mut r = t.records.clone();
    r.swap(10, 11);
    r[10].seq = 11;
    r[11].seq = 12;
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 11,
            kind: Tamper::Reordered { with: 12 }
        }
    );
    // Far apart.
    let mut r = t.records.clone();
    r.swap(10, 30);
    r[10].seq = 11;
    r[30].seq = 31;
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 11,
            kind: Tamper::Reordered { with: 31 }
        }
    );
    // The last two.
    let mut r = t.records.clone();
    r.swap(48, 49);
    r[48].seq = 49;
    r[49].seq = 50;
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 49,
            kind: Tamper::Reordered { with: 50 }
        }
    );
    // Lines out of order in an export (sequence numbers kept).
    let mut r = t.records.clone();
    r.swap(10, 11);
    assert_eq!(
        fails(&t, &r, &[]),
        Failure {
            seq: 11,
            kind: Tamper::Deleted { count: Some(1) }
        }
    );
}

#[test]
fn truncation_after_a_checkpoint_is_named() {
    let t = trail(100, 40);
    // Cut at 70: the checkpoint at 80 vouches for records that are gone.
    let r = &t.records[..70];
    assert_eq!(
        fails(&t, r, &t.checkpoints),
        Failure {
            seq: 71,
            kind: Tamper::Truncated {
                last: Some(70),
                expected: 80
            }
        }
    );
    // Cut after the last checkpoint: undetectable from the records alone, but not past a
    // trusted head.
    let r = &t.records[..90];
    assert!(check(&t, r, &t.checkpoints).is_ok());
    let mut v = Verifier::new(t.key);
    v.expect_head(100, t.records[99].hash);
    for x in r {
        v.push(&x.view(), &x.hash).unwrap();
    }
    assert_eq!(
        v.finish().unwrap_err().kind,
        Tamper::Truncated {
            last: Some(90),
            expected: 100
        }
    );
    // Everything gone.
    assert_eq!(
        fails(&t, &[], &t.checkpoints).kind,
        Tamper::Truncated {
            last: None,
            expected: 80
        }
    );
}

#[test]
fn rewriting_with_recomputed_hashes_is_caught_by_the_checkpoint() {
    let t = trail(100, 40);
    let mut r = t.records.clone();
    r[50].action = "nothing.happened".into();
    rehash(&mut r, 50);
    assert_eq!(
        fails(&t, &r, &t.checkpoints),
        Failure {
            seq: 80,
            kind: Tamper::CheckpointMismatch
        }
    );
    // Without checkpoints the rewrite cannot be seen: that is what they are for.
    assert!(check(&t, &r, &[]).is_ok());
}

#[test]
fn bad_checkpoint_signatures_are_named() {
    let t = trail(100, 40);
    let mut cps = t.checkpoints.clone();
    cps[1].signature[0] ^= 1;
    assert_eq!(
        fails(&t, &t.records, &cps),
        Failure {
            seq: 80,
            kind: Tamper::BadSignature
        }
    );
    // Signed by another key.
    let (other, _) = SigningKey::generate().unwrap();
    let mut cps = t.checkpoints.clone();
    cps[0] = Checkpoint::sign(&other, 40, t.records[39].hash, Timestamp(1));
    assert_eq!(fails(&t, &t.records, &cps).kind, Tamper::BadSignature);
    // A checkpoint moved to another record.
    let mut cps = t.checkpoints.clone();
    cps[0].seq = 41;
    assert_eq!(fails(&t, &t.records, &cps).kind, Tamper::BadSignature);
}

#[test]
fn verification_can_start_from_a_checkpoint() {
    let t = trail(100, 40);
    let start = t.checkpoints[0].clone();
    // Records up to the checkpoint are gone (pruned); the rest verifies from it.
    let rest = &t.records[40..];
    let s = verify_mem(t.key, rest, &t.checkpoints[1..], Some(&start)).unwrap();
    assert_eq!(s.records, 60);
    assert_eq!(s.started_from, Some(40));
    // In an export: an anchor line, or --from on a full export.
    let mut text = header_line(&t.key);
    text.push('\n');
    text.push_str(&checkpoint_line(&start, true));
    text.push('\n');
    text.push_str(&export(rest, &t.checkpoints[1..], &t.key));
    assert_eq!(
        verify_lines(text.lines(), &t.key, None).unwrap().records,
        60
    );
    let full = export(&t.records, &t.checkpoints, &t.key);
    let s = verify_lines(full.lines(), &t.key, Some(80)).unwrap();
    assert_eq!((s.records, s.started_from), (20, Some(80)));
    // A forged start is refused; a start that is not in the export is named.
    let mut forged = start.clone();
    forged.hash = [9; 32];
    assert_eq!(
        Verifier::from_checkpoint(t.key, &forged)
            .err()
            .unwrap()
            .kind,
        Tamper::BadSignature
    );
    assert_eq!(
        verify_lines(full.lines(), &t.key, Some(41))
            .unwrap_err()
            .kind,
        Tamper::MissingStart
    );
    // A tampered record after the start is still named.
    let mut r = rest.to_vec();
    r[5].resource = "user:nobody".into();
    assert_eq!(
        verify_mem(t.key, &r, &[], Some(&start)).unwrap_err(),
        Failure {
            seq: 46,
            kind: Tamper::Modified
        }
    );
}

#[test]
fn a_verifier_holding_only_the_public_key_checks_an_export() {
    let t = trail(10, 5);
    let text = export(&t.records, &t.checkpoints, &t.key);
    // The outside party parses the key from text it got out of band.
    let key = PublicKey::parse(&t.signer.public_key().to_base64()).unwrap();
    let s = enclave_audit::export::verify_reader(text.as_bytes(), &key, None).unwrap();
    assert_eq!((s.records, s.checkpoints), (10, 2));
    // With the wrong key the checkpoints fail.
    let (other, _) = SigningKey::generate().unwrap();
    assert_eq!(
        verify_lines(text.lines(), &other.public_key(), None)
            .unwrap_err()
            .kind,
        Tamper::BadSignature
    );
    // Garbage lines are named with their line number.
    let bad = format!("{text}{{\"type\":\"record\"}}\n");
    match verify_lines(bad.lines(), &key, None).unwrap_err().kind {
        Tamper::Malformed { line, .. } => assert_eq!(line, 14),
        k => panic!("unexpected {k:?}"),
    }
    // A changed detail inside the export (same JSON, different value).
    let changed = text.replace(r#""n":3,"#, r#""n":4,"#);
    assert_eq!(
        verify_lines(changed.lines(), &key, None).unwrap_err(),
        Failure {
            seq: 3,
            kind: Tamper::Modified
        }
    );
    let _: &Hash = &t.records[0].hash;
}
