//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane), off the async
//! executor, through a bounded pool: at most `concurrency` hashes run at once and at most `queue`
//! wait; beyond that the caller gets `unavailable` instead of piling up work.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use enclave_core::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Bounded argon2id pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    /// A hash of a random password, verified against when the account does not exist, so that
    /// unknown users and wrong passwords take the same time.
    dummy: Arc<String>,
}

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| Error::internal())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String> {
    let salt_bytes = crate::secrets::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| Error::internal())?;
    argon2()?
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::internal())
}

fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match argon2() {
        Ok(a) => a.verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl PasswordHasher {
    /// A pool with `concurrency` workers (0 = number of CPUs) and `queue` waiting slots.
    pub fn new(concurrency: usize, queue: usize) -> Result<PasswordHasher> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            concurrency
        };
        let random = crate::secrets::new_secret()?;
        let dummy = hash_blocking(random.as_bytes())?;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
            dummy: Arc::new(dummy),
        })
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _left = scopeguard(self.waiting.clone());
        if waiting >= self.queue + self.permits.available_permits().max(1) && waiting >= self.queue
        {
            return Err(Error::unavailable(
                "password hashing (too many logins at once)",
            ));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::unavailable("password hashing"))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| Error::internal())
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        self.run(move || hash_blocking(&pw)).await?
    }

    /// Verifies a password against a stored PHC string, or against the dummy hash when there is
    /// none (same cost either way). `None` always yields `false`.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        let (target, real) = match phc {
            Some(p) => (p.to_string(), true),
            None => (self.dummy.as_ref().clone(), false),
        };
        let ok = self.run(move || verify_blocking(&pw, &target)).await?;
        Ok(ok && real)
    }
}

/// Decrements the waiting counter when dropped.
struct WaitGuard(Arc<AtomicUsize>);

fn scopeguard(counter: Arc<AtomicUsize>) -> WaitGuard {
    WaitGuard(counter)
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
}
