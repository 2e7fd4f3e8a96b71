//! RFC 4515 filter escaping, filter building and DN helpers (pure functions).

/// Escape a value for use inside an LDAP search filter (RFC 4515): `*`, `(`, `)`, `\`,
/// NUL, control bytes and every non-ASCII byte become `\XX` (lower-case hex of each UTF-8
/// byte), so the value can only ever match literally.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' => push_hex(&mut out, b),
            0x20..=0x7e => out.push(char::from(b)),
            _ => push_hex(&mut out, b),
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

/// The user search filter: `template` with `{username}` replaced by the escaped username.
pub fn user_search_filter(template: &str, username: &str) -> String {
    template.replace("{username}", &escape_filter_value(username))
}

/// The Active Directory "in chain" filter: every group `dn` is a member of, directly or
/// through nesting, resolved by the server (LDAP_MATCHING_RULE_IN_CHAIN).
pub fn ad_in_chain_filter(group_filter: &str, dn: &str) -> String {
    format!(
        "(&{group_filter}(member:1.2.840.113556.1.4.1941:={}))",
        escape_filter_value(dn)
    )
}

/// Groups having any of `dns` as a direct member.
pub(crate) fn member_any_filter(group_filter: &str, dns: &[String]) -> String {
    let mut f = format!("(&{group_filter}(|");
    for dn in dns {
        f.push_str("(member=");
        f.push_str(&escape_filter_value(dn));
        f.push(')');
    }
    f.push_str("))");
    f
}

/// The attribute type and unescaped value of the first RDN of `dn` (RFC 4514), e.g.
/// `cn=Smith\, Ann,ou=groups` → (`cn`, `Smith, Ann`). `None` when it does not parse or
/// the value is hex-encoded (`#...`) or multi-valued.
pub(crate) fn first_rdn(dn: &str) -> Option<(String, String)> {
    let (attr, rest) = dn.split_once('=')?;
    let attr = attr.trim();
    if attr.is_empty() || rest.starts_with('#') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut value: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' => break,
            b'+' => return None,
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                if next.is_ascii_hexdigit() {
                    let hi = hex_val(next)?;
                    let lo = hex_val(*bytes.get(i + 2)?)?;
                    value.push(hi << 4 | lo);
                    i += 3;
                } else {
                    value.push(next);
                    i += 2;
                }
            }
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(value).ok()?;
    Some((attr.to_owned(), value.trim().to_owned()))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_rfc4515_specials() {
        assert_eq!(escape_filter_value("alice"), "alice");
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("alice)(uid=*"), "alice\\29\\28uid=\\2a");
        assert_eq!(
            escape_filter_value("*)(|(uid=*"),
            "\\2a\\29\\28|\\28uid=\\2a"
        );
        assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
        assert_eq!(escape_filter_value("a\0b"), "a\\00b");
        assert_eq!(escape_filter_value("a\nb\x7f"), "a\\0ab\\7f");
        assert_eq!(escape_filter_value("é"), "\\c3\\a9");
        assert_eq!(
            escape_filter_value("Müller (ops)"),
            "M\\c3\\bcller \\28ops\\29"
        );
    }

    #[test]
    fn escaped_filters_parse_and_stay_one_assertion() {
        for hostile in ["*", "alice)(uid=*", "*)(|(uid=*", "\\", "(", "x\0y", "ü*"] {
            let f = user_search_filter("(&(objectClass=inetOrgPerson)(uid={username}))", hostile);
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            // Exactly the two parentheses pairs of the template plus the and: no new clauses.
            assert_eq!(f.matches('(').count(), 3, "{f}");
            assert!(!f.contains('*'), "{f}");
        }
    }

    #[test]
    fn ad_in_chain_filter_is_the_matching_rule_with_the_escaped_dn() {
        // slapd does not implement 1.2.840.113556.1.4.1941, so only the filter is tested.
        let f = ad_in_chain_filter(
            "(objectClass=group)",
            "CN=Smith\\, Ann (ops),OU=People,DC=corp,DC=test",
        );
        assert_eq!(
            f,
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Smith\\5c, Ann \\28ops\\29,OU=People,DC=corp,DC=test))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
    }

    #[test]
    fn member_any_filter_escapes_each_dn() {
        let f = member_any_filter(
            "(objectClass=groupOfNames)",
            &["cn=a*,dc=x".to_owned(), "cn=b\\2c c,dc=x".to_owned()],
        );
        assert_eq!(
            f,
            "(&(objectClass=groupOfNames)(|(member=cn=a\\2a,dc=x)(member=cn=b\\5c2c c,dc=x)))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
    }

    #[test]
    fn first_rdn_unescapes() {
        assert_eq!(
            first_rdn("cn=data-scientists,ou=groups,dc=corp,dc=test").unwrap(),
            ("cn".to_owned(), "data-scientists".to_owned())
        );
        assert_eq!(
            first_rdn("CN=Smith\\, Ann,OU=x").unwrap(),
            ("CN".to_owned(), "Smith, Ann".to_owned())
        );
        assert_eq!(first_rdn("cn=caf\\c3\\a9,dc=x").unwrap().1, "café");
        assert_eq!(first_rdn("cn=a+uid=b,dc=x"), None);
        assert_eq!(first_rdn("cn=#0403616263,dc=x"), None);
        assert_eq!(first_rdn("nonsense"), None);
    }
}
