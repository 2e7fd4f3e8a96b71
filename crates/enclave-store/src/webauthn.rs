//! Storage of WebAuthn passkeys: each credential's public key and signature counter, the
//! registration each account may have waiting for its browser, and the challenge a pending
//! second-factor login was given.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    /// The credential ID, base64url without padding.
    pub id: String,
    /// The owning account.
    pub user_id: String,
    /// The owner's label.
    pub name: String,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    /// The COSE algorithm number.
    pub algorithm: i64,
    /// The last signature counter seen.
    pub sign_count: u32,
    /// The authenticator model's AAGUID, hex.
    pub aaguid: String,
    /// How the authenticator attested the key (`none`, `packed-self`, `packed-x5c`).
    pub attestation: String,
    /// The credential may be synced to other devices.
    pub backup_eligible: bool,
    /// The credential is synced (as of its last use).
    pub backed_up: bool,
    /// Transport hints, a JSON array.
    pub transports: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last signed a login.
    pub last_used_at: Option<Timestamp>,
}

fn passkey_row(r: &SqliteRow) -> StoreResult<PasskeyRow> {
    let count: i64 = r.try_get("sign_count").map_err(map_err)?;
    Ok(PasskeyRow {
        id: s(r, "id")?,
        user_id: s(r, "user_id")?,
        name: s(r, "name")?,
        public_key: r.try_get("public_key").map_err(map_err)?,
        algorithm: r.try_get("algorithm").map_err(map_err)?,
        sign_count: u32::try_from(count).map_err(|_| corrupt("webauthn sign_count"))?,
        aaguid: s(r, "aaguid")?,
        attestation: s(r, "attestation")?,
        backup_eligible: r.try_get("backup_eligible").map_err(map_err)?,
        backed_up: r.try_get("backed_up").map_err(map_err)?,
        transports: s(r, "transports")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("webauthn created_at"))?,
        last_used_at: ts(r, "last_used_at")?,
    })
}

const PASSKEY_COLUMNS: &str = "id, user_id, name, public_key, algorithm, sign_count, aaguid, \
     attestation, backup_eligible, backed_up, transports, created_at, last_used_at";

impl Store {
    /// The account's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<PasskeyRow>> {
        sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM webauthn_credentials WHERE user_id = $1
             ORDER BY created_at, name"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(passkey_row)
        .collect()
    }
}

impl WriteTx {
    /// The account's passkeys, read inside this transaction.
    pub async fn passkeys(&mut self, user_id: &str) -> StoreResult<Vec<PasskeyRow>> {
        sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM webauthn_credentials WHERE user_id = $1
             ORDER BY created_at, name"
        ))
        .bind(user_id)
        .fetch_all(self.sql().await?)
        .await
        .map_err(map_err)?
        .iter()
        .map(passkey_row)
        .collect()
    }

    /// Adds a passkey. Returns `false` (and adds nothing) when its credential ID is already
    /// stored, or the account already has a passkey of that name.
    pub async fn insert_passkey(&mut self, p: &PasskeyRow) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO webauthn_credentials (id, user_id, name, public_key, algorithm,
               sign_count, aaguid, attestation, backup_eligible, backed_up, transports,
               created_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.name)
        .bind(&p.public_key)
        .bind(p.algorithm)
        .bind(i64::from(p.sign_count))
        .bind(&p.aaguid)
        .bind(&p.attestation)
        .bind(p.backup_eligible)
        .bind(p.backed_up)
        .bind(&p.transports)
        .bind(p.created_at.unix())
        .bind(p.last_used_at.map(|t| t.unix()))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a login the passkey signed: its new counter, backup state and time. A
    /// compare-and-set on the counter read before, so two logins racing with the same
    /// assertion cannot both pass; returns whether this one did.
    pub async fn use_passkey(
        &mut self,
        id: &str,
        seen_count: u32,
        new_count: u32,
        backed_up: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE webauthn_credentials SET sign_count = $3, backed_up = $4, last_used_at = $5
             WHERE id = $1 AND sign_count = $2",
        )
        .bind(id)
        .bind(i64::from(seen_count))
        .bind(i64::from(new_count))
        .bind(backed_up)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes one of the account's passkeys; returns whether it existed.
    pub async fn delete_passkey(&mut self, user_id: &str, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM webauthn_credentials WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores the challenge of a registration waiting for the browser, replacing one the
    /// account had waiting.
    pub async fn begin_passkey_registration(
        &mut self,
        user_id: &str,
        challenge: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webauthn_registrations (user_id, challenge, created_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET challenge = $2, created_at = $3",
        )
        .bind(user_id)
        .bind(challenge)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Takes (removes and returns) the account's waiting registration: its challenge and
    /// when it started.
    pub async fn take_passkey_registration(
        &mut self,
        user_id: &str,
    ) -> StoreResult<Option<(String, Timestamp)>> {
        sqlx::query(
            "DELETE FROM webauthn_registrations WHERE user_id = $1
             RETURNING challenge, created_at",
        )
        .bind(user_id)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .map(|r| {
            Ok((
                s(&r, "challenge")?,
                ts(&r, "created_at")?.ok_or(corrupt("webauthn_registrations.created_at"))?,
            ))
        })
        .transpose()
    }

    /// Gives a pending second-factor login a passkey challenge (replacing an earlier one);
    /// returns `false` when there is no such pending login.
    pub async fn set_mfa_pending_challenge(
        &mut self,
        id_hash: &str,
        challenge: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE mfa_pending SET webauthn_challenge = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(challenge)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes the passkey challenge of a pending login: returns it and clears it, so each
    /// challenge is answered at most once.
    pub async fn take_mfa_pending_challenge(
        &mut self,
        id_hash: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT webauthn_challenge FROM mfa_pending WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(self.sql().await?)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let challenge: Option<String> = row.try_get("webauthn_challenge").map_err(map_err)?;
        if challenge.is_some() {
            sqlx::query("UPDATE mfa_pending SET webauthn_challenge = NULL WHERE id_hash = $1")
                .bind(id_hash)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?;
        }
        Ok(challenge)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(id: &str, user: &str, name: &str) -> PasskeyRow {
        PasskeyRow {
            id: id.into(),
            user_id: user.into(),
            name: name.into(),
            public_key: vec![0xa5, 1, 2],
            algorithm: -7,
            sign_count: 0,
            aaguid: "00".repeat(16),
            attestation: "none".into(),
            backup_eligible: true,
            backed_up: false,
            transports: "[\"internal\"]".into(),
            created_at: Timestamp(10),
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn passkeys_counters_and_challenges() {
        let (store, _dir, _) = crate::mfa::tests::store_with_user().await;
        let mut tx = store.write().await.unwrap();
        assert!(tx
            .insert_passkey(&key("c1", "usr_ada", "laptop"))
            .await
            .unwrap());
        assert!(
            !tx.insert_passkey(&key("c1", "usr_ada", "other"))
                .await
                .unwrap(),
            "same credential id"
        );
        assert!(
            !tx.insert_passkey(&key("c2", "usr_ada", "laptop"))
                .await
                .unwrap(),
            "same name"
        );
        assert!(tx
            .insert_passkey(&key("c2", "usr_ada", "phone"))
            .await
            .unwrap());
        assert!(tx
            .use_passkey("c1", 0, 5, true, Timestamp(20))
            .await
            .unwrap());
        assert!(
            !tx.use_passkey("c1", 0, 6, true, Timestamp(21))
                .await
                .unwrap(),
            "stale counter"
        );

        tx.begin_passkey_registration("usr_ada", "ch1", Timestamp(30))
            .await
            .unwrap();
        tx.begin_passkey_registration("usr_ada", "ch2", Timestamp(31))
            .await
            .unwrap();
        assert_eq!(
            tx.take_passkey_registration("usr_ada").await.unwrap(),
            Some(("ch2".into(), Timestamp(31)))
        );
        assert!(tx
            .take_passkey_registration("usr_ada")
            .await
            .unwrap()
            .is_none());

        tx.insert_mfa_pending("p1", "usr_ada", "session", "{}", Timestamp(40))
            .await
            .unwrap();
        assert!(tx.take_mfa_pending_challenge("p1").await.unwrap().is_none());
        assert!(tx.set_mfa_pending_challenge("p1", "ch3").await.unwrap());
        assert!(!tx.set_mfa_pending_challenge("p9", "ch3").await.unwrap());
        assert_eq!(
            tx.take_mfa_pending_challenge("p1")
                .await
                .unwrap()
                .as_deref(),
            Some("ch3")
        );
        assert!(tx.take_mfa_pending_challenge("p1").await.unwrap().is_none());
        tx.commit().await.unwrap();

        let keys = store.passkeys("usr_ada").await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].sign_count, keys[0].backed_up), (5, true));
        assert_eq!(keys[0].last_used_at, Some(Timestamp(20)));

        let mut tx = store.write().await.unwrap();
        assert!(tx.delete_passkey("usr_ada", "c2").await.unwrap());
        assert!(!tx.delete_passkey("usr_ada", "c2").await.unwrap());
        assert!(tx.delete_mfa("usr_ada").await.unwrap());
        tx.commit().await.unwrap();
        assert!(store.passkeys("usr_ada").await.unwrap().is_empty());
    }
}
