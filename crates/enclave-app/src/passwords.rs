//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) on a small set
//! of dedicated worker threads, off the async executor.
//!
//! * At most `concurrency` hashes run at once (one per worker); at most `queue` wait. Beyond that
//!   the caller gets `unavailable` at once instead of piling up work.
//! * Each worker owns its 19 MiB argon2 memory and reuses it for every hash, so memory stays at
//!   `concurrency × 19 MiB` however many logins arrive (allocating per hash on short-lived
//!   blocking threads let the allocator keep hundreds of MiB).

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use enclave_core::{Error, Result};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Argon2id memory in KiB (OWASP: 19 MiB).
const M_COST: u32 = 19 * 1024;
/// Passes.
const T_COST: u32 = 2;
/// Lanes.
const P_COST: u32 = 1;
/// Hash output length in bytes.
const OUTPUT_LEN: usize = 32;

enum Job {
    Hash {
        password: Zeroizing<Vec<u8>>,
        reply: oneshot::Sender<Result<String>>,
    },
    Verify {
        password: Zeroizing<Vec<u8>>,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

/// Bounded argon2id pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
    /// A hash of a random password, verified against when the account does not exist, so that
    /// unknown users and wrong passwords take the same time.
    dummy: Arc<String>,
}

fn params() -> Result<Params> {
    Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|_| Error::internal())
}

/// One worker's reusable argon2 memory.
struct Memory(Vec<Block>);

impl Memory {
    fn for_params(&mut self, p: &Params) -> &mut [Block] {
        if self.0.len() != p.block_count() {
            self.0 = vec![Block::default(); p.block_count()];
        }
        &mut self.0
    }

    fn hash(&mut self, password: &[u8]) -> Result<String> {
        let p = params()?;
        let salt_bytes = crate::secrets::random_bytes::<16>()?;
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| Error::internal())?;
        let mut out = [0u8; OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, p.clone())
            .hash_password_into_with_memory(password, &salt_bytes, &mut out, self.for_params(&p))
            .map_err(|_| Error::internal())?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: (&p).try_into().map_err(|_| Error::internal())?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|_| Error::internal())?),
        };
        Ok(phc.to_string())
    }

    fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Ok(algorithm), Ok(p), Some(salt), Some(expected)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
            parsed.salt,
            parsed.hash,
        ) else {
            return false;
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or_default();
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let ok = Argon2::new(algorithm, version, p.clone())
            .hash_password_into_with_memory(password, salt, &mut out, self.for_params(&p))
            .is_ok();
        // `Output` compares in constant time.
        ok && Output::new(&out).is_ok_and(|o| o == expected)
    }
}

fn worker(jobs: Arc<Mutex<std::sync::mpsc::Receiver<Job>>>) {
    let mut memory = Memory(Vec::new());
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        match job {
            Ok(Job::Hash { password, reply }) => {
                let _ = reply.send(memory.hash(&password));
            }
            Ok(Job::Verify {
                password,
                phc,
                reply,
            }) => {
                let _ = reply.send(memory.verify(&password, &phc));
            }
            Err(_) => return,
        }
    }
}

impl PasswordHasher {
    /// A pool with `concurrency` worker threads (0 = number of CPUs) and `queue` waiting jobs.
    pub fn new(concurrency: usize, queue: usize) -> Result<PasswordHasher> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            concurrency
        };
        let (tx, rx) = sync_channel(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(rx))
                .map_err(|_| Error::internal())?;
        }
        let random = crate::secrets::new_secret()?;
        let dummy = Memory(Vec::new()).hash(random.as_bytes())?;
        Ok(PasswordHasher {
            jobs: tx,
            dummy: Arc::new(dummy),
        })
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                Error::unavailable("password hashing (too many logins at once)")
            }
            TrySendError::Disconnected(_) => Error::internal(),
        })
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash {
            password: Zeroizing::new(password.as_bytes().to_vec()),
            reply,
        })?;
        answer.await.map_err(|_| Error::internal())?
    }

    /// Verifies a password against a stored PHC string, or against the dummy hash when there is
    /// none (same cost either way). `None` always yields `false`.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let real = phc.is_some();
        self.submit(Job::Verify {
            password: Zeroizing::new(password.as_bytes().to_vec()),
            phc: phc.unwrap_or(&self.dummy).to_string(),
            reply,
        })?;
        let ok = answer.await.map_err(|_| Error::internal())?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(1, 4).unwrap();
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse battery", Some(&phc)).await.unwrap());
        assert!(!h.verify("wrong horse battery", Some(&phc)).await.unwrap());
        assert!(!h.verify("anything", None).await.unwrap());
        assert!(!h.verify("anything", Some("not a phc")).await.unwrap());
    }

    #[tokio::test]
    async fn interoperates_with_the_reference_implementation() {
        let h = PasswordHasher::new(1, 4).unwrap();
        // Ours verifies with the argon2 crate's own verifier, and the other way round.
        let ours = h.hash("interop-password-1").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interop-password-1", &parsed)
            .is_ok());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap())
            .hash_password(b"interop-password-2", &salt)
            .unwrap()
            .to_string();
        assert!(h.verify("interop-password-2", Some(&theirs)).await.unwrap());
        assert!(!h.verify("interop-password-3", Some(&theirs)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_piled_up() {
        let h = PasswordHasher::new(1, 1).unwrap();
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash("queue-test-password").await })
            })
            .collect();
        let mut refused = 0;
        for j in jobs {
            if let Err(e) = j.await.unwrap() {
                assert_eq!(e.code, enclave_core::ErrorCode::Unavailable);
                refused += 1;
            }
        }
        assert!(refused > 0, "some hashes were refused");
    }
}
