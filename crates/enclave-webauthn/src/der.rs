//! The little DER (X.690) walking packed attestation needs: find the leaf certificate's
//! SubjectPublicKeyInfo and its FIDO AAGUID extension. Nothing else of the certificate is
//! interpreted (no validity period, no chain, no trust anchors).

use crate::Error;

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_OID: u8 = 0x06;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_BOOLEAN: u8 = 0x01;
const TAG_VERSION: u8 = 0xa0;
const TAG_EXTENSIONS: u8 = 0xa3;

/// id-fido-gen-ce-aaguid, 1.3.6.1.4.1.45724.1.1.4.
const OID_FIDO_AAGUID: &[u8] = &[
    0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xe5, 0x1c, 0x01, 0x01, 0x04,
];
/// id-ecPublicKey, 1.2.840.10045.2.1.
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (P-256), 1.2.840.10045.3.1.7.
pub const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// rsaEncryption, 1.2.840.113549.1.1.1.
pub const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// What packed attestation needs from the leaf certificate.
#[derive(Debug)]
pub struct LeafCert<'a> {
    /// The whole SubjectPublicKeyInfo element (tag and length included).
    pub spki: &'a [u8],
    /// The algorithm OID inside the SubjectPublicKeyInfo.
    pub key_algorithm: &'a [u8],
    /// The algorithm parameters element contents when they are an OID (the EC curve).
    pub key_curve: Option<&'a [u8]>,
    /// The AAGUID extension's value, when the certificate carries one.
    pub aaguid: Option<&'a [u8]>,
}

struct Der<'a> {
    input: &'a [u8],
    pos: usize,
}

struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(input: &'a [u8]) -> Self {
        Der { input, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<Tlv<'a>, Error> {
        const BAD: Error = Error::Malformed("attestation certificate is not valid DER");
        let start = self.pos;
        let tag = *self.input.get(self.pos).ok_or(BAD)?;
        if tag & 0x1f == 0x1f {
            return Err(BAD);
        }
        let first = *self.input.get(self.pos + 1).ok_or(BAD)?;
        self.pos += 2;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let width = usize::from(first & 0x7f);
            if width == 0 || width > 3 {
                return Err(BAD);
            }
            let bytes = self.input.get(self.pos..self.pos + width).ok_or(BAD)?;
            self.pos += width;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if len > self.input.len().saturating_sub(self.pos) {
            return Err(BAD);
        }
        let contents = self.input.get(self.pos..self.pos + len).ok_or(BAD)?;
        self.pos += len;
        let whole = self.input.get(start..self.pos).ok_or(BAD)?;
        Ok(Tlv {
            tag,
            contents,
            whole,
        })
    }

    fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, Error> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(Error::Malformed(
                "attestation certificate has an unexpected structure",
            ));
        }
        Ok(tlv)
    }
}

/// Walks an X.509 certificate far enough to return its public key and AAGUID extension.
pub fn parse_leaf(cert: &[u8]) -> Result<LeafCert<'_>, Error> {
    let mut outer = Der::new(cert);
    let certificate = outer.expect(TAG_SEQUENCE)?;
    if !outer.is_empty() {
        return Err(Error::Malformed(
            "attestation certificate has trailing bytes",
        ));
    }
    let mut cert_fields = Der::new(certificate.contents);
    let tbs = cert_fields.expect(TAG_SEQUENCE)?;
    let mut tbs = Der::new(tbs.contents);
    // Packed attestation certificates must be X.509 version 3 (the [0] field holds 2).
    let version = tbs.expect(TAG_VERSION)?;
    let version = Der::new(version.contents).expect(TAG_INTEGER)?;
    if version.contents != [0x02] {
        return Err(Error::Malformed(
            "attestation certificate is not X.509 version 3",
        ));
    }
    tbs.expect(TAG_INTEGER)?; // serial number
    tbs.expect(TAG_SEQUENCE)?; // signature algorithm
    tbs.expect(TAG_SEQUENCE)?; // issuer
    tbs.expect(TAG_SEQUENCE)?; // validity
    tbs.expect(TAG_SEQUENCE)?; // subject
    let spki = tbs.expect(TAG_SEQUENCE)?;
    let mut spki_fields = Der::new(spki.contents);
    let algorithm = spki_fields.expect(TAG_SEQUENCE)?;
    let mut algorithm = Der::new(algorithm.contents);
    let key_algorithm = algorithm.expect(TAG_OID)?.contents;
    let key_curve = match algorithm.peek_tag() {
        Some(TAG_OID) => Some(algorithm.expect(TAG_OID)?.contents),
        _ => None,
    };

    let mut aaguid = None;
    while !tbs.is_empty() {
        let field = tbs.next()?;
        if field.tag != TAG_EXTENSIONS {
            continue; // issuer/subject unique identifiers
        }
        let list = Der::new(field.contents).expect(TAG_SEQUENCE)?;
        let mut list = Der::new(list.contents);
        while !list.is_empty() {
            let extension = list.expect(TAG_SEQUENCE)?;
            let mut extension = Der::new(extension.contents);
            let oid = extension.expect(TAG_OID)?;
            if extension.peek_tag() == Some(TAG_BOOLEAN) {
                extension.expect(TAG_BOOLEAN)?;
            }
            let value = extension.expect(TAG_OCTET_STRING)?;
            if oid.contents == OID_FIDO_AAGUID {
                if aaguid.is_some() {
                    return Err(Error::Malformed(
                        "attestation certificate repeats the AAGUID extension",
                    ));
                }
                let inner = Der::new(value.contents).expect(TAG_OCTET_STRING)?;
                aaguid = Some(inner.contents);
            }
        }
    }
    Ok(LeafCert {
        spki: spki.whole,
        key_algorithm,
        key_curve,
        aaguid,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x84, 0, 0, 0, 1, 0],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x00, 0x00],
            &[0x31, 0x00],
        ] {
            assert!(parse_leaf(bad).is_err(), "accepted {bad:02x?}");
        }
    }
}
