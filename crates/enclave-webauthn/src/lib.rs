//! WebAuthn (passkey) relying-party verification for Enclave, following W3C WebAuthn Level 2/3
//! §7.1 (registering a new credential) and §7.2 (verifying an authentication assertion).
//!
//! The crate is pure: no IO, no clock, no randomness. The caller creates the challenge (at
//! least 16 random bytes, single use, short-lived), stores it between the two halves of a
//! ceremony, and stores the [`Credential`] a registration yields. All cryptography is aws-lc-rs.
//!
//! # What is verified
//!
//! - Client data: `type` (`webauthn.create` / `webauthn.get`), the challenge (constant-time
//!   comparison with the one the server issued), the origin (exactly [`RelyingParty::origin`]),
//!   and `crossOrigin` (refused when true: Enclave is never embedded in another site's frame).
//! - Authenticator data: the RP ID hash (SHA-256 of [`RelyingParty::id`]), user presence
//!   always, user verification when the caller requires it, backup state only with backup
//!   eligibility, well-formed attested credential data and extensions, no trailing bytes.
//! - The credential key: ES256 (P-256, point on the curve), EdDSA (Ed25519) or RS256 (2048 to
//!   8192-bit modulus). Anything else is [`Error::UnsupportedAlgorithm`].
//! - Attestation: `none` (empty statement) and `packed`, self attestation (signature by the
//!   credential key) or `x5c` (signature by the leaf certificate's key, whose AAGUID extension,
//!   when present, must match). Other formats are [`Error::UnsupportedAttestation`].
//! - Assertions: the credential ID equals the stored one (constant time), the signature over
//!   `authenticatorData || SHA-256(clientDataJSON)` verifies with the stored key, and the
//!   signature counter moves forward whenever either side uses one
//!   ([`Error::CounterRegression`] hints at a cloned authenticator).
//! - Size limits on every binary field before and after base64url decoding; the CBOR decoder
//!   is strict (definite lengths, no tags or floats, depth at most 16, lengths checked against
//!   the remaining input before any allocation, duplicate map keys refused).
//!
//! # What is not verified
//!
//! - Attestation certificate chains are **not** validated against trust anchors, and no FIDO
//!   Metadata Service lookup is made: an `x5c` attestation proves only that the statement is
//!   self-consistent, not who made the authenticator. Treat the AAGUID as a hint.
//! - Token binding is ignored, as are client and authenticator extension outputs (authenticator
//!   extensions are checked for well-formedness only). `topOrigin` is not consulted since
//!   cross-origin use is refused.
//! - The user handle of a discoverable-credential login is returned by
//!   [`AuthenticationResponse::user_handle`]; checking that it belongs to the account that owns
//!   the credential is the caller's job, as is finding the credential by its ID, refusing a
//!   credential ID already registered, and limiting the size of the whole response body.

mod authdata;
mod cbor;
mod cose;
mod der;
mod options;
mod response;
mod verify;

pub use cose::{ALG_EDDSA, ALG_ES256, ALG_RS256};
pub use options::{creation_options, request_options, CHALLENGE_MIN_LEN, TIMEOUT_MS};
pub use response::{
    AssertionResponseJson, AttestationResponseJson, AuthenticationResponse, RegistrationResponse,
    MAX_ATTESTATION_OBJECT, MAX_AUTHENTICATOR_DATA, MAX_CLIENT_DATA, MAX_CREDENTIAL_ID,
    MAX_SIGNATURE, MAX_USER_HANDLE,
};
pub use verify::{verify_authentication, verify_registration};

use serde::{Deserialize, Serialize};

/// The relying party: Enclave itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The RP ID: a host name (`localhost`, `enclave.example.org`), no scheme and no port.
    pub id: String,
    /// The exact origin browsers report, e.g. `https://localhost:8443` (no trailing slash).
    pub origin: String,
    /// The name authenticators show the user.
    pub name: String,
}

impl RelyingParty {
    /// Checks the configuration once at startup: the origin is `https://` (or `http://` for
    /// `localhost`), has no path, and its host equals the RP ID or is a subdomain of it.
    pub fn validate(&self) -> Result<(), Error> {
        let id = self.id.as_str();
        let id_ok = !id.is_empty()
            && id.len() <= 253
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !id.starts_with('.')
            && !id.ends_with('.');
        if !id_ok {
            return Err(Error::InvalidConfig(
                "the passkey RP ID must be a lowercase host name such as enclave.example.org",
            ));
        }
        let (scheme, rest) = self.origin.split_once("://").ok_or(Error::InvalidConfig(
            "the passkey origin must look like https://host[:port]",
        ))?;
        if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
            return Err(Error::InvalidConfig(
                "the passkey origin must be scheme://host[:port] with nothing after it",
            ));
        }
        let host = match rest.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                host
            }
            _ => rest,
        };
        let local = host == "localhost" || host.ends_with(".localhost");
        if scheme != "https" && !(scheme == "http" && local) {
            return Err(Error::InvalidConfig(
                "the passkey origin must use https (plain http only for localhost)",
            ));
        }
        let within = host == id
            || host
                .strip_suffix(id)
                .is_some_and(|prefix| prefix.ends_with('.'));
        if !within {
            return Err(Error::InvalidConfig(
                "the passkey origin's host must be the RP ID or a subdomain of it",
            ));
        }
        Ok(())
    }
}

/// A user as WebAuthn sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntity {
    /// Opaque user handle, at most 64 bytes, never an email or other personal data.
    pub id: Vec<u8>,
    /// The account name shown to the user (e.g. the login name).
    pub name: String,
    /// The friendly name shown to the user.
    pub display_name: String,
}

/// The relying party's user-verification requirement (PIN, biometrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// The authenticator must verify the user.
    Required,
    /// Verify the user when the authenticator can.
    Preferred,
    /// Do not ask for user verification.
    Discouraged,
}

impl UserVerification {
    /// The WebAuthn string for this requirement.
    pub fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

/// How the new credential was attested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attestation {
    /// Format `none`: no statement about the authenticator.
    None,
    /// Format `packed`, signed by the credential's own key.
    PackedSelf,
    /// Format `packed` with a certificate chain. The chain is NOT verified against trust
    /// anchors: it proves nothing about who made the authenticator.
    PackedX5c,
}

impl Attestation {
    /// A short stable name for storage: `none`, `packed-self`, `packed-x5c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Attestation::None => "none",
            Attestation::PackedSelf => "packed-self",
            Attestation::PackedX5c => "packed-x5c",
        }
    }
}

/// A verified new credential: everything the caller stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential ID (equal to rawId and to the one in authenticator data; at most 1023 bytes).
    pub id: Vec<u8>,
    /// The COSE_Key bytes as received; parsed again at each authentication.
    pub public_key: Vec<u8>,
    /// The COSE algorithm: [`ALG_ES256`], [`ALG_EDDSA`] or [`ALG_RS256`].
    pub algorithm: i64,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// The authenticator model identifier (zeros when not disclosed; not verified).
    pub aaguid: [u8; 16],
    /// The attestation kind.
    pub attestation: Attestation,
    /// Whether the authenticator verified the user.
    pub user_verified: bool,
    /// Whether the credential may be synced to other devices (a multi-device passkey).
    pub backup_eligible: bool,
    /// Whether the credential is currently backed up.
    pub backed_up: bool,
    /// Transports the browser reported, restricted to: usb nfc ble internal hybrid smart-card.
    pub transports: Vec<String>,
}

/// What the caller has stored for the credential being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCredential<'a> {
    /// The credential ID.
    pub id: &'a [u8],
    /// The COSE_Key bytes from [`Credential::public_key`].
    pub public_key: &'a [u8],
    /// The last signature counter seen.
    pub sign_count: u32,
}

/// The result of a verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assertion {
    /// The new signature counter, to store.
    pub sign_count: u32,
    /// Whether the authenticator verified the user.
    pub user_verified: bool,
    /// Whether the credential is currently backed up.
    pub backed_up: bool,
}

/// Why a passkey response was refused. Messages never repeat the submitted data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field is missing, badly encoded or inconsistent; the text names the field.
    #[error("the passkey response is malformed: {0}")]
    Malformed(&'static str),
    /// The response is for the other ceremony (sign-in data posted to registration or back).
    #[error("the passkey response is for the wrong kind of request; start again")]
    WrongType,
    /// The response answers another (or an expired) challenge.
    #[error("the passkey response does not answer the current challenge; start again")]
    ChallengeMismatch,
    /// The server-side challenge is too short to be safe (a bug in the caller).
    #[error("the server's passkey challenge is shorter than 16 bytes")]
    WeakChallenge,
    /// The browser reported another origin than this server's.
    #[error("the passkey was used from another web address than this server's; open Enclave at its configured address")]
    OriginMismatch,
    /// The ceremony ran in a frame of another site.
    #[error("passkeys cannot be used from a page embedded in another site")]
    CrossOrigin,
    /// The credential is scoped to another relying party.
    #[error("the passkey belongs to another site")]
    RpIdMismatch,
    /// The authenticator did not confirm the user's presence.
    #[error("the authenticator did not confirm that a user was present; touch the security key or confirm on the device")]
    UserNotPresent,
    /// User verification was required but not performed.
    #[error("the authenticator did not verify the user (PIN or biometrics are required); use an authenticator that supports it")]
    UserNotVerified,
    /// The credential key uses an algorithm Enclave does not accept.
    #[error("the passkey uses an unsupported algorithm; use a passkey with ES256, EdDSA or RS256")]
    UnsupportedAlgorithm,
    /// The attestation format is not one Enclave understands.
    #[error("the authenticator's attestation format is not supported; try another authenticator or browser")]
    UnsupportedAttestation,
    /// A signature did not verify.
    #[error("the passkey signature is not valid")]
    BadSignature,
    /// The signature counter did not increase: the authenticator may have been cloned.
    #[error("the passkey's signature counter went backwards, so the authenticator may have been cloned; sign-in refused, contact an administrator")]
    CounterRegression,
    /// The response is for another credential than the expected one.
    #[error("the passkey used is not the one expected")]
    CredentialMismatch,
    /// A field is larger than allowed.
    #[error("a field of the passkey response is larger than allowed")]
    TooLarge,
    /// The relying-party configuration is unusable; the text says what to fix.
    #[error("passkey configuration error: {0}")]
    InvalidConfig(&'static str),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn rp(id: &str, origin: &str) -> RelyingParty {
        RelyingParty {
            id: id.into(),
            origin: origin.into(),
            name: "Enclave".into(),
        }
    }

    #[test]
    fn validates_relying_party() {
        assert!(rp("localhost", "https://localhost:8443").validate().is_ok());
        assert!(rp("localhost", "http://localhost:8080").validate().is_ok());
        assert!(rp("example.org", "https://enclave.example.org")
            .validate()
            .is_ok());
        for (id, origin) in [
            ("example.org", "http://enclave.example.org"),
            ("example.org", "https://badexample.org"),
            ("example.org", "https://example.org/"),
            ("Example.org", "https://example.org"),
            ("", "https://example.org"),
            ("example.org", "example.org"),
            ("example.org", "https://example.org:84x3"),
            ("enclave.example.org", "https://example.org"),
        ] {
            assert!(
                matches!(rp(id, origin).validate(), Err(Error::InvalidConfig(_))),
                "accepted {id} {origin}"
            );
        }
    }
}
