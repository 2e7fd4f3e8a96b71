//! The JSON options the console's JavaScript hands to `navigator.credentials.create()` and
//! `navigator.credentials.get()`. Binary fields are base64url without padding; the page decodes
//! them into `ArrayBuffer`s (or uses `PublicKeyCredential.parse*OptionsFromJSON`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::cose::{ALG_EDDSA, ALG_ES256, ALG_RS256};
use crate::{RelyingParty, UserEntity, UserVerification};

/// How long the browser waits for the user, in milliseconds.
pub const TIMEOUT_MS: u64 = 120_000;

/// The shortest challenge the verifiers accept (WebAuthn asks for at least 16 random bytes).
pub const CHALLENGE_MIN_LEN: usize = 16;

fn descriptors(ids: &[Vec<u8>]) -> Vec<Value> {
    ids.iter()
        .map(|id| json!({ "type": "public-key", "id": URL_SAFE_NO_PAD.encode(id) }))
        .collect()
}

/// Options for `navigator.credentials.create({publicKey: …})`: ES256, EdDSA and RS256 in that
/// order of preference, attestation `none`, a discoverable credential preferred (a passkey),
/// and `exclude` listing the user's existing credential IDs so one authenticator is not
/// registered twice. `user.id` must be an opaque handle of at most 64 bytes.
pub fn creation_options(
    rp: &RelyingParty,
    user: &UserEntity,
    challenge: &[u8],
    exclude: &[Vec<u8>],
    uv: UserVerification,
) -> Value {
    json!({
        "rp": { "id": rp.id, "name": rp.name },
        "user": {
            "id": URL_SAFE_NO_PAD.encode(&user.id),
            "name": user.name,
            "displayName": user.display_name,
        },
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "pubKeyCredParams": [
            { "type": "public-key", "alg": ALG_ES256 },
            { "type": "public-key", "alg": ALG_EDDSA },
            { "type": "public-key", "alg": ALG_RS256 },
        ],
        "timeout": TIMEOUT_MS,
        "excludeCredentials": descriptors(exclude),
        "authenticatorSelection": {
            "residentKey": "preferred",
            "requireResidentKey": false,
            "userVerification": uv.as_str(),
        },
        "attestation": "none",
    })
}

/// Options for `navigator.credentials.get({publicKey: …})`. An empty `allow` asks for a
/// discoverable credential (passwordless sign-in: the browser offers the user's passkeys).
pub fn request_options(
    rp: &RelyingParty,
    challenge: &[u8],
    allow: &[Vec<u8>],
    uv: UserVerification,
) -> Value {
    json!({
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "timeout": TIMEOUT_MS,
        "rpId": rp.id,
        "allowCredentials": descriptors(allow),
        "userVerification": uv.as_str(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty {
            id: "localhost".into(),
            origin: "https://localhost:8443".into(),
            name: "Enclave".into(),
        }
    }

    #[test]
    fn creation_options_shape() {
        let user = UserEntity {
            id: vec![0xfb, 0xff, 0x01],
            name: "ada".into(),
            display_name: "Ada Lovelace".into(),
        };
        let v = creation_options(
            &rp(),
            &user,
            &[0xff; 4],
            &[vec![0xfe, 0xff]],
            UserVerification::Required,
        );
        assert_eq!(v["rp"]["id"], "localhost");
        assert_eq!(v["rp"]["name"], "Enclave");
        assert_eq!(v["user"]["id"], "-_8B");
        assert_eq!(v["user"]["displayName"], "Ada Lovelace");
        assert_eq!(v["challenge"], "_____w");
        assert_eq!(v["excludeCredentials"][0]["id"], "_v8");
        assert_eq!(v["excludeCredentials"][0]["type"], "public-key");
        let algs: Vec<i64> = v["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["alg"].as_i64().unwrap())
            .collect();
        assert_eq!(algs, [-7, -8, -257]);
        assert_eq!(v["timeout"], 120_000);
        assert_eq!(v["attestation"], "none");
        assert_eq!(v["authenticatorSelection"]["residentKey"], "preferred");
        assert_eq!(v["authenticatorSelection"]["userVerification"], "required");
    }

    #[test]
    fn request_options_shape() {
        let v = request_options(&rp(), &[1; 16], &[], UserVerification::Preferred);
        assert_eq!(v["rpId"], "localhost");
        assert_eq!(v["allowCredentials"].as_array().map(Vec::len), Some(0));
        assert_eq!(v["userVerification"], "preferred");
        assert_eq!(v["challenge"], "AQEBAQEBAQEBAQEBAQEBAQ");
        let v = request_options(
            &rp(),
            &[1; 16],
            &[vec![1], vec![2]],
            UserVerification::Discouraged,
        );
        assert_eq!(v["allowCredentials"][1]["id"], "Ag");
        assert_eq!(v["userVerification"], "discouraged");
    }
}
