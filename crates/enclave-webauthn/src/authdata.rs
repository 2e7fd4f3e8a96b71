//! Authenticator data (WebAuthn §6.1): rpIdHash, flags, signature counter, and the optional
//! attested credential data and extensions.

use crate::cbor::{self, Value};
use crate::Error;

/// Flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// Flag: user verified.
pub const FLAG_UV: u8 = 0x04;
/// Flag: backup eligible.
pub const FLAG_BE: u8 = 0x08;
/// Flag: backed up.
pub const FLAG_BS: u8 = 0x10;
/// Flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Flag: extension data included.
pub const FLAG_ED: u8 = 0x80;

/// Longest credential ID accepted (WebAuthn Level 3 caps it at 1023 bytes).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// The credential an authenticator reports at registration.
#[derive(Debug)]
pub struct AttestedCredential<'a> {
    /// The authenticator model identifier (all zeros when not disclosed).
    pub aaguid: [u8; 16],
    /// The credential ID.
    pub credential_id: &'a [u8],
    /// The COSE_Key bytes exactly as they appear.
    pub public_key: &'a [u8],
    /// The same key, decoded.
    pub public_key_value: Value<'a>,
}

/// Parsed authenticator data.
#[derive(Debug)]
pub struct AuthenticatorData<'a> {
    /// SHA-256 of the RP ID the credential is scoped to.
    pub rp_id_hash: &'a [u8],
    /// The flag bits.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// Present when the AT flag is set.
    pub attested: Option<AttestedCredential<'a>>,
}

impl AuthenticatorData<'_> {
    /// Whether a flag bit is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// Parses authenticator data, refusing trailing or missing bytes.
pub fn parse(data: &[u8]) -> Result<AuthenticatorData<'_>, Error> {
    const SHORT: Error = Error::Malformed("authenticator data is too short");
    let rp_id_hash = data.get(..32).ok_or(SHORT)?;
    let flags = *data.get(32).ok_or(SHORT)?;
    let counter = data.get(33..37).ok_or(SHORT)?;
    let sign_count = counter
        .iter()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    let mut rest = data.get(37..).ok_or(SHORT)?;

    let attested = if flags & FLAG_AT != 0 {
        let aaguid_bytes = rest.get(..16).ok_or(SHORT)?;
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(aaguid_bytes);
        let len_bytes = rest.get(16..18).ok_or(SHORT)?;
        let id_len = usize::from(u16::from_be_bytes([
            *len_bytes.first().ok_or(SHORT)?,
            *len_bytes.get(1).ok_or(SHORT)?,
        ]));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID {
            return Err(Error::Malformed("credential ID length is out of range"));
        }
        let credential_id = rest.get(18..18 + id_len).ok_or(SHORT)?;
        let key_area = rest.get(18 + id_len..).ok_or(SHORT)?;
        let (public_key_value, used) = cbor::decode_prefix(key_area)?;
        let public_key = key_area.get(..used).ok_or(SHORT)?;
        rest = key_area.get(used..).ok_or(SHORT)?;
        Some(AttestedCredential {
            aaguid,
            credential_id,
            public_key,
            public_key_value,
        })
    } else {
        None
    };

    if flags & FLAG_ED != 0 {
        // Extension outputs are checked for well-formedness only, then ignored.
        let extensions = cbor::decode_exact(rest)?;
        if extensions.as_map().is_none() {
            return Err(Error::Malformed("authenticator extensions are not a map"));
        }
    } else if !rest.is_empty() {
        return Err(Error::Malformed("authenticator data has trailing bytes"));
    }

    Ok(AuthenticatorData {
        rp_id_hash,
        flags,
        sign_count,
        attested,
    })
}
