//! WebAuthn passkeys as a second factor of local accounts: adding one (with
//! re-authentication), listing and removing them, and answering a pending login's passkey
//! challenge. The ceremonies themselves are verified by `enclave-webauthn`.
//!
//! Invariants:
//! * The relying party is Enclave's public URL: its host is the RP ID and its origin the only
//!   origin accepted. A public URL whose host is an IP address cannot have passkeys.
//! * Adding a passkey needs the current password; each registration challenge (32 random
//!   bytes) is stored per account, answered at most once and within [`CEREMONY_TTL`].
//! * A pending login's passkey challenge is taken by the attempt that answers it, and that
//!   attempt counts against the login's attempts like a code does.
//! * A signature counter only moves forward (compare-and-set in the store); a counter that
//!   goes back refuses the login and is audited as a possible cloned authenticator.
//! * Removing the last second factor is refused here: turning MFA off needs the password and a
//!   code ([`App::disable_mfa`]).

use crate::chokepoint::Caller;
use crate::secrets::random_bytes;
use crate::{detail, App};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::{names, Error, ErrorCode, Result, Timestamp};
use enclave_store::{PasskeyRow, WriteTx};
use enclave_webauthn::{
    AuthenticationResponse, RegistrationResponse, RelyingParty, StoredCredential, UserEntity,
    UserVerification,
};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a passkey ceremony (adding one, or answering a login) waits for the browser.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// Passkeys one account may have.
pub const MAX_PASSKEYS: usize = 10;
/// Longest passkey label, in characters.
pub const MAX_NAME: usize = 64;
/// The `amr` of a session opened with a password and a passkey.
pub const PASSKEY_AMR: [&str; 3] = ["pwd", "hwk", "mfa"];

/// A passkey as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The credential ID, base64url.
    pub id: String,
    /// The owner's label.
    pub name: String,
    /// The COSE algorithm number (-7 ES256, -8 EdDSA, -257 RS256).
    pub algorithm: i64,
    /// How the authenticator attested the key (`none`, `packed-self`, `packed-x5c`;
    /// attestation chains are not checked against trust anchors).
    pub attestation: String,
    /// A multi-device (synced) passkey.
    pub backup_eligible: bool,
    /// Synced as of its last use.
    pub backed_up: bool,
    /// Transport hints the browser reported.
    pub transports: Vec<String>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last signed a login.
    pub last_used_at: Option<Timestamp>,
}

impl From<PasskeyRow> for Passkey {
    fn from(r: PasskeyRow) -> Self {
        Passkey {
            id: r.id,
            name: r.name,
            algorithm: r.algorithm,
            attestation: r.attestation,
            backup_eligible: r.backup_eligible,
            backed_up: r.backed_up,
            transports: serde_json::from_str(&r.transports).unwrap_or_default(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// A passkey just added, and the recovery codes when it turned MFA on (shown once).
#[derive(Debug)]
pub struct PasskeyAdded {
    /// The new passkey.
    pub passkey: Passkey,
    /// Ten one-use recovery codes when this was the account's first second factor; empty
    /// otherwise (the codes issued earlier stay valid).
    pub recovery_codes: Vec<Zeroizing<String>>,
}

/// The relying party for a public base URL: its host is the RP ID, `scheme://host[:port]`
/// the origin. `None` when the host is an IP address (WebAuthn needs a host name) or the URL
/// is unusable.
pub fn relying_party(public_url: &str) -> Option<RelyingParty> {
    let (scheme, rest) = public_url.split_once("://")?;
    let authority = rest.split('/').next()?.to_ascii_lowercase();
    let host = if authority.starts_with('[') {
        return None;
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            _ => authority.clone(),
        }
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let rp = RelyingParty {
        id: host,
        origin: format!("{}://{authority}", scheme.to_ascii_lowercase()),
        name: "Enclave".into(),
    };
    rp.validate().ok().map(|()| rp)
}

fn no_passkeys_here() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "passkeys need Enclave to be reached by a host name, not an IP address: set public_url \
         (for example https://localhost:8443 on one machine) and open Enclave at that address",
    )
}

fn refused(e: &enclave_webauthn::Error) -> Error {
    Error::invalid("passkey", format!("the passkey was not accepted: {e}"))
}

fn encode(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn decode(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| {
        tracing::error!("a stored passkey challenge is not base64url");
        Error::internal()
    })
}

fn expired(started: Timestamp, now: Timestamp) -> bool {
    now.unix() >= started.unix() + CEREMONY_TTL.as_secs() as i64
}

/// Why a passkey did not finish a login, for the audit trail and the user.
pub(crate) enum PasskeyRefusal {
    /// No challenge was waiting: the options were not requested, or were answered already.
    NoChallenge,
    /// The credential is not one of the account's.
    Unknown,
    /// The ceremony's verification failed.
    Invalid(enclave_webauthn::Error),
    /// Another login used the same counter value first.
    Raced,
}

impl PasskeyRefusal {
    /// A short reason for the audit trail.
    pub(crate) fn reason(&self) -> String {
        match self {
            PasskeyRefusal::NoChallenge => "passkey without a current challenge".into(),
            PasskeyRefusal::Unknown => "passkey not registered to the account".into(),
            PasskeyRefusal::Invalid(enclave_webauthn::Error::CounterRegression) => {
                "passkey counter went backwards (possible cloned authenticator)".into()
            }
            PasskeyRefusal::Invalid(e) => format!("passkey refused: {e}"),
            PasskeyRefusal::Raced => "passkey counter already used".into(),
        }
    }

    /// The error shown to the user.
    pub(crate) fn error(&self) -> Error {
        match self {
            PasskeyRefusal::NoChallenge => Error::invalid(
                "passkey",
                "this passkey answer is not for the current sign-in step; ask for the passkey \
                 options again and use the passkey once",
            ),
            PasskeyRefusal::Unknown => Error::invalid(
                "passkey",
                "this passkey is not registered to your account; use another one, or a code",
            ),
            PasskeyRefusal::Invalid(e) => refused(e),
            PasskeyRefusal::Raced => Error::invalid(
                "passkey",
                "this passkey signature was already used; try again",
            ),
        }
    }
}

/// An account's second factors, as an administrator (or the account itself) sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMfa {
    /// TOTP is confirmed.
    pub totp: bool,
    /// The account's passkeys.
    pub passkeys: Vec<Passkey>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl UserMfa {
    /// A short summary for lists: `TOTP, 2 passkeys`, or `none`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.totp {
            parts.push("TOTP".to_string());
        }
        match self.passkeys.len() {
            0 => {}
            1 => parts.push("1 passkey".into()),
            n => parts.push(format!("{n} passkeys")),
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

impl App {
    /// The relying party Enclave presents, or a conflict saying how to get one.
    pub(crate) fn relying_party(&self) -> Result<RelyingParty> {
        relying_party(self.public_url()).ok_or_else(no_passkeys_here)
    }

    /// Whether passkeys can be used at this installation's public URL.
    pub fn passkeys_available(&self) -> bool {
        relying_party(self.public_url()).is_some()
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, caller: &Caller) -> Result<Vec<Passkey>> {
        self.authorize_self(caller, Action::SelfRead).await?;
        Ok(self
            .store
            .passkeys(&caller.principal.user_id)
            .await?
            .into_iter()
            .map(Passkey::from)
            .collect())
    }

    /// An account's second factors (platform admins, or the account itself).
    pub async fn user_mfa(&self, caller: &Caller, username: &str) -> Result<UserMfa> {
        let user = self.get_user(caller, username).await?;
        self.mfa_of(&user.id).await
    }

    /// The second factors of accounts by user id, for lists already authorized by the caller.
    pub async fn mfa_of_users(
        &self,
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, UserMfa>> {
        let mut out = std::collections::HashMap::new();
        for id in user_ids {
            out.insert(id.clone(), self.mfa_of(id).await?);
        }
        Ok(out)
    }

    async fn mfa_of(&self, user_id: &str) -> Result<UserMfa> {
        Ok(UserMfa {
            totp: self
                .store
                .mfa_totp(user_id)
                .await?
                .is_some_and(|r| r.confirmed_at.is_some()),
            passkeys: self
                .store
                .passkeys(user_id)
                .await?
                .into_iter()
                .map(Passkey::from)
                .collect(),
            recovery_codes_left: self.store.mfa_recovery_left(user_id).await?,
        })
    }

    /// Starts adding a passkey after checking the caller's password: returns the options for
    /// the browser's `navigator.credentials.create`. Starting again replaces the challenge.
    pub async fn begin_passkey(
        &self,
        caller: &Caller,
        password: &str,
    ) -> Result<serde_json::Value> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        let rp = self.relying_party()?;
        self.reauthenticate(caller, "mfa.enroll", "password", password)
            .await?;
        let me = caller.principal.user_id.clone();
        let existing = self.store.passkeys(&me).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("an account has at most {MAX_PASSKEYS} passkeys; remove one first"),
            ));
        }
        let challenge = random_bytes::<32>()?;
        let exclude: Vec<Vec<u8>> = existing
            .iter()
            .filter_map(|k| URL_SAFE_NO_PAD.decode(&k.id).ok())
            .collect();
        let user = UserEntity {
            id: me.as_bytes().to_vec(),
            name: caller.principal.username.clone(),
            display_name: caller.principal.username.clone(),
        };
        let options = enclave_webauthn::creation_options(
            &rp,
            &user,
            &challenge,
            &exclude,
            UserVerification::Preferred,
        );
        let mut tx = self.store.write().await?;
        tx.begin_passkey_registration(&me, &encode(&challenge), self.now())
            .await?;
        let rec = caller.record_self(
            self,
            "mfa.enroll",
            Outcome::Success,
            detail!("factor" => "passkey", "step" => "started"),
        );
        self.commit(tx, rec).await?;
        Ok(options)
    }

    /// Finishes adding a passkey: verifies the browser's answer to the started registration
    /// and stores the credential under `name`. The first second factor of an account also
    /// gets the ten recovery codes.
    pub async fn finish_passkey(
        &self,
        caller: &Caller,
        name: &str,
        response: &RegistrationResponse,
    ) -> Result<PasskeyAdded> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        let name = name.trim();
        names::text("name", name, true)?;
        if name.chars().count() > MAX_NAME {
            return Err(Error::invalid(
                "name",
                format!("a passkey name has at most {MAX_NAME} characters"),
            ));
        }
        let rp = self.relying_party()?;
        let me = caller.principal.user_id.clone();
        let now = self.now();
        let mut tx = self.store.write().await?;
        let Some((challenge, started)) = tx.take_passkey_registration(&me).await? else {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                "no passkey registration is waiting (or it was answered already): start again \
                 with your password",
            ));
        };
        if expired(started, now) {
            tx.commit().await?;
            return Err(Error::new(
                ErrorCode::Conflict,
                "the passkey registration expired; start again with your password",
            ));
        }
        let verified =
            enclave_webauthn::verify_registration(&rp, &decode(&challenge)?, response, false);
        let credential = match verified {
            Ok(c) => c,
            Err(e) => {
                let rec = caller.record_self(
                    self,
                    "mfa.passkey.add",
                    Outcome::Failure,
                    detail!("reason" => e.to_string()),
                );
                self.commit(tx, rec).await?;
                return Err(refused(&e));
            }
        };
        let had_factor = self.has_second_factor_tx(&mut tx, &me).await?;
        if tx.passkeys(&me).await?.len() >= MAX_PASSKEYS {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("an account has at most {MAX_PASSKEYS} passkeys; remove one first"),
            ));
        }
        let row = PasskeyRow {
            id: encode(&credential.id),
            user_id: me.clone(),
            name: name.to_string(),
            public_key: credential.public_key.clone(),
            algorithm: credential.algorithm,
            sign_count: credential.sign_count,
            aaguid: credential
                .aaguid
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            attestation: credential.attestation.as_str().to_string(),
            backup_eligible: credential.backup_eligible,
            backed_up: credential.backed_up,
            transports: serde_json::to_string(&credential.transports)
                .map_err(|_| Error::internal())?,
            created_at: now,
            last_used_at: None,
        };
        if !tx.insert_passkey(&row).await? {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                "this passkey is already registered, or you have a passkey with that name; \
                 choose another name",
            ));
        }
        let codes = if had_factor {
            Vec::new()
        } else {
            self.issue_recovery_codes(&mut tx, &me).await?
        };
        let rec = caller.record_self(
            self,
            "mfa.passkey.add",
            Outcome::Success,
            detail!(
                "name" => name,
                "algorithm" => credential.algorithm,
                "attestation" => credential.attestation.as_str(),
                "backup_eligible" => credential.backup_eligible,
                "recovery_codes" => codes.len()
            ),
        );
        self.commit(tx, rec).await?;
        Ok(PasskeyAdded {
            passkey: row.into(),
            recovery_codes: codes,
        })
    }

    /// Removes one of the caller's passkeys after checking the password. The account's last
    /// second factor cannot be removed this way: turning MFA off needs a code as well.
    pub async fn remove_passkey(&self, caller: &Caller, id: &str, password: &str) -> Result<()> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        let me = caller.principal.user_id.clone();
        let keys = self.store.passkeys(&me).await?;
        let Some(key) = keys.iter().find(|k| k.id == id) else {
            return Err(Error::new(
                ErrorCode::NotFound,
                "you have no passkey with this id; list them with `enclave mfa passkeys`",
            ));
        };
        self.reauthenticate(caller, "mfa.passkey.remove", "password", password)
            .await?;
        let mut tx = self.store.write().await?;
        let totp_on = tx
            .mfa_totp(&me)
            .await?
            .is_some_and(|r| r.confirmed_at.is_some());
        if !totp_on && tx.passkeys(&me).await?.len() <= 1 {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                "this is your last second factor: to stop using two-factor authentication, turn \
                 it off with your password and a recovery code",
            ));
        }
        if !tx.delete_passkey(&me, id).await? {
            drop(tx);
            return Err(Error::new(
                ErrorCode::NotFound,
                "the passkey was removed meanwhile",
            ));
        }
        let rec = caller.record_self(
            self,
            "mfa.passkey.remove",
            Outcome::Success,
            detail!("name" => key.name.as_str()),
        );
        self.commit(tx, rec).await
    }

    /// Whether the account has a second factor on (confirmed TOTP or a passkey), read inside
    /// `tx`.
    pub(crate) async fn has_second_factor_tx(
        &self,
        tx: &mut WriteTx,
        user_id: &str,
    ) -> Result<bool> {
        let totp = tx
            .mfa_totp(user_id)
            .await?
            .is_some_and(|r| r.confirmed_at.is_some());
        Ok(totp || !tx.passkeys(user_id).await?.is_empty())
    }

    /// The options for `navigator.credentials.get` that answer the pending login named by
    /// `mfa_token` with one of the account's passkeys. Asking again replaces the challenge.
    pub async fn passkey_login_options(&self, mfa_token: &str) -> Result<serde_json::Value> {
        let rp = self.relying_party()?;
        let (key, pending) = self.pending_login(mfa_token).await?;
        let keys = self.store.passkeys(&pending.user_id).await?;
        if keys.is_empty() {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this account has no passkey; enter a code from your authenticator app or a \
                 recovery code",
            ));
        }
        let allow: Vec<Vec<u8>> = keys
            .iter()
            .filter_map(|k| URL_SAFE_NO_PAD.decode(&k.id).ok())
            .collect();
        let challenge = random_bytes::<32>()?;
        let mut tx = self.store.write().await?;
        if !tx
            .set_mfa_pending_challenge(&key, &encode(&challenge))
            .await?
        {
            drop(tx);
            return Err(crate::mfa::pending_gone());
        }
        tx.commit().await?;
        Ok(enclave_webauthn::request_options(
            &rp,
            &challenge,
            &allow,
            UserVerification::Preferred,
        ))
    }

    /// Checks a passkey's answer to the pending login `pending_key` inside `tx`: takes the
    /// challenge, verifies the assertion with the stored key, and moves the counter forward.
    pub(crate) async fn use_passkey(
        &self,
        tx: &mut WriteTx,
        pending_key: &str,
        user_id: &str,
        response: &AuthenticationResponse,
    ) -> Result<std::result::Result<(), PasskeyRefusal>> {
        let Some(challenge) = tx.take_mfa_pending_challenge(pending_key).await? else {
            return Ok(Err(PasskeyRefusal::NoChallenge));
        };
        let rp = self.relying_party()?;
        let Ok(id) = response.credential_id() else {
            return Ok(Err(PasskeyRefusal::Unknown));
        };
        let id = encode(&id);
        let keys = tx.passkeys(user_id).await?;
        let Some(stored) = keys.iter().find(|k| k.id == id) else {
            return Ok(Err(PasskeyRefusal::Unknown));
        };
        let raw_id = decode(&stored.id)?;
        let verified = enclave_webauthn::verify_authentication(
            &rp,
            &decode(&challenge)?,
            response,
            &StoredCredential {
                id: &raw_id,
                public_key: &stored.public_key,
                sign_count: stored.sign_count,
            },
            false,
        );
        let assertion = match verified {
            Ok(a) => a,
            Err(e) => return Ok(Err(PasskeyRefusal::Invalid(e))),
        };
        if !tx
            .use_passkey(
                &stored.id,
                stored.sign_count,
                assertion.sign_count,
                assertion.backed_up,
                self.now(),
            )
            .await?
        {
            return Ok(Err(PasskeyRefusal::Raced));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relying_party_from_the_public_url() {
        let rp = relying_party("https://localhost:8443").unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.origin.as_str()),
            ("localhost", "https://localhost:8443")
        );
        let rp = relying_party("https://Enclave.Example.org/base").unwrap();
        assert_eq!(rp.id, "enclave.example.org");
        assert_eq!(rp.origin, "https://enclave.example.org");
        for url in [
            "https://127.0.0.1:8443",
            "https://[::1]:8443",
            "http://enclave.example.org",
            "ftp://localhost",
            "localhost",
        ] {
            assert!(relying_party(url).is_none(), "{url}");
        }
        assert!(relying_party("http://localhost:8080").is_some());
    }
}
