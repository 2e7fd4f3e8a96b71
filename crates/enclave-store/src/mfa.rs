//! Storage of second factors: each account's TOTP secret (sealed by the caller), its one-use
//! recovery code hashes, and logins waiting for their second factor.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// An account's TOTP enrolment as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaTotpRow {
    /// The secret, sealed with the platform key.
    pub secret: String,
    /// When enrolment started.
    pub created_at: Timestamp,
    /// When a first code confirmed it (MFA is on from then).
    pub confirmed_at: Option<Timestamp>,
    /// The last accepted time step.
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for MfaTotpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaTotpRow")
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// A login waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaPendingRow {
    /// The account whose password was right.
    pub user_id: String,
    /// `session` or `token`.
    pub kind: String,
    /// JSON: what the finished login opens (token name and lifetime).
    pub detail: String,
    /// When the password was checked.
    pub created_at: Timestamp,
    /// Codes tried so far, this one included.
    pub attempts: u32,
}

fn totp_row(r: &SqliteRow) -> StoreResult<MfaTotpRow> {
    let last: Option<i64> = r.try_get("last_step").map_err(map_err)?;
    Ok(MfaTotpRow {
        secret: s(r, "secret")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("mfa_totp.created_at"))?,
        confirmed_at: ts(r, "confirmed_at")?,
        last_step: last.and_then(|v| u64::try_from(v).ok()),
    })
}

fn step_value(step: u64) -> StoreResult<i64> {
    i64::try_from(step).map_err(|_| corrupt("totp step out of range"))
}

const TOTP_SELECT: &str =
    "SELECT secret, created_at, confirmed_at, last_step FROM mfa_totp WHERE user_id = $1";

impl Store {
    /// The account's TOTP enrolment, confirmed or not.
    pub async fn mfa_totp(&self, user_id: &str) -> StoreResult<Option<MfaTotpRow>> {
        sqlx::query(TOTP_SELECT)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| totp_row(&r))
            .transpose()
    }

    /// How many of the account's recovery codes are still unused.
    pub async fn mfa_recovery_left(&self, user_id: &str) -> StoreResult<u32> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM mfa_recovery WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

impl Store {
    /// The pending login stored under `id_hash`, without counting an attempt.
    pub async fn mfa_pending(&self, id_hash: &str) -> StoreResult<Option<MfaPendingRow>> {
        sqlx::query(
            "SELECT user_id, kind, detail, created_at, attempts FROM mfa_pending
             WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| pending_row(&r))
        .transpose()
    }
}

fn pending_row(r: &SqliteRow) -> StoreResult<MfaPendingRow> {
    let attempts: i64 = r.try_get("attempts").map_err(map_err)?;
    Ok(MfaPendingRow {
        user_id: s(r, "user_id")?,
        kind: s(r, "kind")?,
        detail: s(r, "detail")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("mfa_pending.created_at"))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

impl WriteTx {
    /// The account's TOTP enrolment, read inside this transaction.
    pub async fn mfa_totp(&mut self, user_id: &str) -> StoreResult<Option<MfaTotpRow>> {
        sqlx::query(TOTP_SELECT)
            .bind(user_id)
            .fetch_optional(self.sql().await?)
            .await
            .map_err(map_err)?
            .map(|r| totp_row(&r))
            .transpose()
    }

    /// Starts (or restarts) an unconfirmed enrolment with a new sealed secret. Does nothing
    /// and returns `false` when the account already has a confirmed one.
    pub async fn begin_mfa_totp(
        &mut self,
        user_id: &str,
        sealed_secret: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO mfa_totp (user_id, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = $2, created_at = $3, last_step = NULL
               WHERE mfa_totp.confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(sealed_secret)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Confirms an enrolment with the step of its first code; `false` when there is no
    /// unconfirmed enrolment.
    pub async fn confirm_mfa_totp(
        &mut self,
        user_id: &str,
        step: u64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE mfa_totp SET confirmed_at = $2, last_step = $3
             WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(now.unix())
        .bind(step_value(step)?)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Records `step` as used if it is later than the last used one; `false` when it is not
    /// (the code was already used), which makes replay refusal atomic.
    pub async fn use_mfa_step(&mut self, user_id: &str, step: u64) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE mfa_totp SET last_step = $2
             WHERE user_id = $1 AND confirmed_at IS NOT NULL
               AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user_id)
        .bind(step_value(step)?)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces the account's recovery codes with `hashes`.
    pub async fn replace_mfa_recovery(
        &mut self,
        user_id: &str,
        hashes: &[String],
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM mfa_recovery WHERE user_id = $1")
            .bind(user_id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        for h in hashes {
            sqlx::query("INSERT INTO mfa_recovery (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(h)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Marks an unused recovery code used; `false` when it is unknown or already used.
    pub async fn use_mfa_recovery(
        &mut self,
        user_id: &str,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE mfa_recovery SET used_at = $3
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes the account's second factors: TOTP secret, passkeys, recovery codes, and
    /// pending logins and registrations.
    pub async fn delete_mfa(&mut self, user_id: &str) -> StoreResult<bool> {
        let mut removed = 0;
        for sql in [
            "DELETE FROM mfa_totp WHERE user_id = $1",
            "DELETE FROM mfa_recovery WHERE user_id = $1",
            "DELETE FROM mfa_pending WHERE user_id = $1",
            "DELETE FROM webauthn_credentials WHERE user_id = $1",
            "DELETE FROM webauthn_registrations WHERE user_id = $1",
        ] {
            removed += sqlx::query(sql)
                .bind(user_id)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        Ok(removed > 0)
    }

    /// Stores a login waiting for its second factor under the hash of its id.
    pub async fn insert_mfa_pending(
        &mut self,
        id_hash: &str,
        user_id: &str,
        kind: &str,
        detail: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mfa_pending (id_hash, user_id, kind, detail, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(kind)
        .bind(detail)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Counts one more code tried against a pending login and returns it (with the attempt
    /// counted); `None` when there is no such pending login.
    pub async fn attempt_mfa_pending(
        &mut self,
        id_hash: &str,
    ) -> StoreResult<Option<MfaPendingRow>> {
        sqlx::query(
            "UPDATE mfa_pending SET attempts = attempts + 1 WHERE id_hash = $1
             RETURNING user_id, kind, detail, created_at, attempts",
        )
        .bind(id_hash)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .map(|r| pending_row(&r))
        .transpose()
    }

    /// Ends a pending login (finished, expired or out of attempts).
    pub async fn delete_mfa_pending(&mut self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM mfa_pending WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Drops pending logins started before `before`; returns how many.
    pub async fn prune_mfa_pending(&mut self, before: Timestamp) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM mfa_pending WHERE created_at < $1")
            .bind(before.unix())
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A fresh store holding one account, `ada` (id `usr_ada`).
    pub(crate) async fn store_with_user() -> (Store, tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let user = enclave_core::model::User {
            id: "usr_ada".into(),
            username: "ada".into(),
            display_name: String::new(),
            email: String::new(),
            platform_admin: false,
            disabled: false,
            created_at: Timestamp(1),
        };
        let mut tx = store.write().await.unwrap();
        tx.insert_user(&user, None).await.unwrap();
        tx.commit().await.unwrap();
        (store, dir, user.id)
    }

    #[tokio::test]
    async fn totp_steps_recovery_codes_and_pending_logins() {
        let (store, _dir, uid) = store_with_user().await;
        let now = Timestamp(1_700_000_000);
        let mut tx = store.write().await.unwrap();
        assert!(tx.begin_mfa_totp(&uid, "sealed-1", now).await.unwrap());
        // A second enrolment before confirmation replaces the secret.
        assert!(tx.begin_mfa_totp(&uid, "sealed-2", now).await.unwrap());
        assert!(
            !tx.use_mfa_step(&uid, 5).await.unwrap(),
            "not confirmed yet"
        );
        assert!(tx.confirm_mfa_totp(&uid, 10, now).await.unwrap());
        assert!(!tx.confirm_mfa_totp(&uid, 11, now).await.unwrap());
        assert!(!tx.begin_mfa_totp(&uid, "sealed-3", now).await.unwrap());
        assert!(!tx.use_mfa_step(&uid, 10).await.unwrap(), "same step twice");
        assert!(tx.use_mfa_step(&uid, 11).await.unwrap());
        tx.replace_mfa_recovery(&uid, &["h1".into(), "h2".into()])
            .await
            .unwrap();
        assert!(tx.use_mfa_recovery(&uid, "h1", now).await.unwrap());
        assert!(!tx.use_mfa_recovery(&uid, "h1", now).await.unwrap());
        assert!(!tx.use_mfa_recovery(&uid, "nope", now).await.unwrap());
        tx.insert_mfa_pending("p1", &uid, "session", "{}", now)
            .await
            .unwrap();
        let p = tx.attempt_mfa_pending("p1").await.unwrap().unwrap();
        assert_eq!((p.attempts, p.kind.as_str()), (1, "session"));
        assert_eq!(
            tx.attempt_mfa_pending("p1")
                .await
                .unwrap()
                .unwrap()
                .attempts,
            2
        );
        assert!(tx.attempt_mfa_pending("p2").await.unwrap().is_none());
        tx.commit().await.unwrap();

        let row = store.mfa_totp(&uid).await.unwrap().unwrap();
        assert_eq!(row.secret, "sealed-2");
        assert_eq!(row.last_step, Some(11));
        assert!(!format!("{row:?}").contains("sealed"));
        assert_eq!(store.mfa_recovery_left(&uid).await.unwrap(), 1);

        let mut tx = store.write().await.unwrap();
        assert_eq!(
            tx.prune_mfa_pending(Timestamp(now.unix() + 1))
                .await
                .unwrap(),
            1
        );
        assert!(tx.delete_mfa(&uid).await.unwrap());
        tx.commit().await.unwrap();
        assert!(store.mfa_totp(&uid).await.unwrap().is_none());
        assert_eq!(store.mfa_recovery_left(&uid).await.unwrap(), 0);
    }
}
