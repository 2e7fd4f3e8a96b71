//! What the browser posts back: the `PublicKeyCredential.toJSON()` shapes, with size-checked
//! base64url decoding of every binary field.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest clientDataJSON accepted, in bytes.
pub const MAX_CLIENT_DATA: usize = 4 * 1024;
/// Largest attestationObject accepted, in bytes.
pub const MAX_ATTESTATION_OBJECT: usize = 64 * 1024;
/// Largest authenticatorData accepted (assertions), in bytes.
pub const MAX_AUTHENTICATOR_DATA: usize = 16 * 1024;
/// Largest signature accepted, in bytes.
pub const MAX_SIGNATURE: usize = 1024;
/// Largest credential ID accepted, in bytes.
pub const MAX_CREDENTIAL_ID: usize = crate::authdata::MAX_CREDENTIAL_ID;
/// Largest user handle accepted, in bytes.
pub const MAX_USER_HANDLE: usize = 64;

/// base64url, padding optional (browsers omit it; some libraries add it).
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a base64url field, refusing it before and after decoding when over `max` bytes.
pub(crate) fn decode_field(text: &str, max: usize, field: &'static str) -> Result<Vec<u8>, Error> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(Error::TooLarge);
    }
    let bytes = B64.decode(text).map_err(|_| Error::Malformed(field))?;
    if bytes.len() > max {
        return Err(Error::TooLarge);
    }
    Ok(bytes)
}

/// Decodes `rawId`, checks it against `id` and the size limit.
fn credential_id(id: &str, raw_id: &str) -> Result<Vec<u8>, Error> {
    let raw = decode_field(raw_id, MAX_CREDENTIAL_ID, "rawId is not base64url")?;
    let named = decode_field(id, MAX_CREDENTIAL_ID, "id is not base64url")?;
    if raw.is_empty() {
        return Err(Error::Malformed("rawId is empty"));
    }
    if raw != named {
        return Err(Error::Malformed("id and rawId differ"));
    }
    Ok(raw)
}

fn check_type(kind: &str) -> Result<(), Error> {
    if kind == "public-key" {
        Ok(())
    } else {
        Err(Error::Malformed("type is not public-key"))
    }
}

/// The `response` member of a registration (`AuthenticatorAttestationResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponseJson {
    /// clientDataJSON, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// The CBOR attestation object, base64url.
    pub attestation_object: String,
    /// Transports reported by the browser (`getTransports()`).
    #[serde(default)]
    pub transports: Vec<String>,
}

/// What the browser posts after `navigator.credentials.create()` (`PublicKeyCredential.toJSON()`).
/// Other members the browser adds (`publicKey`, `authenticatorData`, …) are ignored: the
/// verifier reads everything from the signed attestation object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponse {
    /// The credential ID, base64url.
    pub id: String,
    /// The same credential ID, base64url (must equal `id`).
    pub raw_id: String,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's response.
    pub response: AttestationResponseJson,
    /// `platform` or `cross-platform`, informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Client extension outputs, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_extension_results: Option<serde_json::Value>,
}

impl RegistrationResponse {
    /// The new credential's ID (rawId, checked against id and the size limit).
    pub fn credential_id(&self) -> Result<Vec<u8>, Error> {
        check_type(&self.kind)?;
        credential_id(&self.id, &self.raw_id)
    }
}

/// The `response` member of an authentication (`AuthenticatorAssertionResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponseJson {
    /// clientDataJSON, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// Authenticator data, base64url.
    pub authenticator_data: String,
    /// The signature, base64url.
    pub signature: String,
    /// The user handle stored with a discoverable credential, base64url (absent, null or empty
    /// when the authenticator returned none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<String>,
}

/// What the browser posts after `navigator.credentials.get()` (`PublicKeyCredential.toJSON()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponse {
    /// The credential ID, base64url.
    pub id: String,
    /// The same credential ID, base64url (must equal `id`).
    pub raw_id: String,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's response.
    pub response: AssertionResponseJson,
    /// `platform` or `cross-platform`, informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Client extension outputs, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_extension_results: Option<serde_json::Value>,
}

impl AuthenticationResponse {
    /// The ID of the credential used (rawId, checked against id and the size limit): look the
    /// stored credential up with it before calling [`crate::verify_authentication`].
    pub fn credential_id(&self) -> Result<Vec<u8>, Error> {
        check_type(&self.kind)?;
        credential_id(&self.id, &self.raw_id)
    }

    /// The user handle the authenticator returned, if any (at most 64 bytes). For a
    /// discoverable login it names the account; the caller must check that the credential
    /// belongs to that account. It is not covered by the signature checks of this crate.
    pub fn user_handle(&self) -> Result<Option<Vec<u8>>, Error> {
        match self.response.user_handle.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => {
                decode_field(text, MAX_USER_HANDLE, "userHandle is not base64url").map(Some)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_or_without_padding() {
        assert_eq!(decode_field("AQI", 8, "x").unwrap(), vec![1, 2]);
        assert_eq!(decode_field("AQI=", 8, "x").unwrap(), vec![1, 2]);
        assert_eq!(decode_field("-_8", 8, "x").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_field("+/8", 8, "x"), Err(Error::Malformed("x")));
        assert_eq!(decode_field("A", 8, "x"), Err(Error::Malformed("x")));
        assert_eq!(decode_field("AAAAAAAAAAAA", 8, "x"), Err(Error::TooLarge));
        assert_eq!(decode_field(&"A".repeat(16), 8, "x"), Err(Error::TooLarge));
        assert_eq!(decode_field("AAAAAAAAAAA", 8, "x").map(|b| b.len()), Ok(8));
    }

    #[test]
    fn user_handle_forms() {
        let json = |handle: serde_json::Value| {
            serde_json::from_value::<AuthenticationResponse>(serde_json::json!({
                "id": "AQ", "rawId": "AQ", "type": "public-key",
                "response": { "clientDataJSON": "", "authenticatorData": "", "signature": "", "userHandle": handle }
            }))
            .unwrap()
        };
        assert_eq!(json(serde_json::Value::Null).user_handle(), Ok(None));
        assert_eq!(json("".into()).user_handle(), Ok(None));
        assert_eq!(json("AQI".into()).user_handle(), Ok(Some(vec![1, 2])));
        assert_eq!(
            json("A".repeat(90).into()).user_handle(),
            Err(Error::TooLarge)
        );
        assert_eq!(json("AQ".into()).credential_id(), Ok(vec![1]));
        let mut r = json(serde_json::Value::Null);
        r.id = "Ag".into();
        assert_eq!(
            r.credential_id(),
            Err(Error::Malformed("id and rawId differ"))
        );
        r.id = "AQ".into();
        r.kind = "password".into();
        assert!(r.credential_id().is_err());
    }
}
