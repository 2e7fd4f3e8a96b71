//! SCIM User and Group resources (RFC 7643 §4), with lenient JSON input and canonical output.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ScimError;
use crate::filter::get_ci;

/// Schema URN of the User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Schema URN of the Group resource.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Longest string accepted in any attribute, in bytes.
pub const MAX_STRING_LEN: usize = 1024;
/// Most values accepted in one multi-valued attribute (emails, members).
pub const MAX_MULTI_VALUES: usize = 1000;

/// Resource metadata set by the backend (the crate adds `resourceType` and `location`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// When the resource was created.
    pub created: Option<OffsetDateTime>,
    /// When the resource last changed.
    pub last_modified: Option<OffsetDateTime>,
    /// Version, sent as the weak ETag `W/"<version>"`; change it on every modification.
    pub version: Option<u64>,
}

impl Meta {
    /// The weak ETag of this version (`W/"7"`).
    pub fn etag(&self) -> Option<String> {
        self.version.map(weak_etag)
    }
}

/// The weak ETag for a version number.
pub fn weak_etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// A User's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    /// Full name as displayed.
    pub formatted: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
}

/// One e-mail address of a User.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Email {
    /// The address.
    pub value: String,
    /// Label: `work`, `home`, `other`.
    pub kind: Option<String>,
    /// Whether it is the preferred address.
    pub primary: Option<bool>,
}

/// A group the User belongs to (read-only, computed by the backend).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRef {
    /// The group's id.
    pub value: String,
    /// The group's display name.
    pub display: Option<String>,
}

/// A SCIM User.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// Server-assigned id (empty in create requests).
    pub id: String,
    /// The client's own identifier.
    pub external_id: Option<String>,
    /// Unique (case-insensitively) login name.
    pub user_name: String,
    /// Name parts.
    pub name: Option<Name>,
    /// Display name.
    pub display_name: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<Email>,
    /// Whether the account is enabled; `None` when the client never set it.
    pub active: Option<bool>,
    /// Groups (read-only; ignored on input).
    pub groups: Vec<GroupRef>,
    /// Metadata (ignored on input).
    pub meta: Meta,
}

/// A member of a Group (`value`, `type`; `$ref` is derived). RFC 7643 §8.7.1 lists no
/// `display` for members, and scim2-tester refuses attributes its schema lacks, so none is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// The member's id.
    pub value: String,
    /// `User` or `Group`; `None` means User.
    pub kind: Option<String>,
}

/// A SCIM Group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Server-assigned id (empty in create requests).
    pub id: String,
    /// The client's own identifier.
    pub external_id: Option<String>,
    /// Display name (required).
    pub display_name: String,
    /// Members.
    pub members: Vec<Member>,
    /// Metadata (ignored on input).
    pub meta: Meta,
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

fn opt_string(obj: &Value, key: &str) -> Result<Option<String>, ScimError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_STRING_LEN => Err(invalid(format!(
            "'{key}' is longer than {MAX_STRING_LEN} bytes"
        ))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("'{key}' must be a string"))),
    }
}

/// Booleans, also as the strings "true"/"false" in any case (Entra ID sends "False").
fn opt_bool(obj: &Value, key: &str) -> Result<Option<bool>, ScimError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(invalid(format!("'{key}' must be true or false"))),
    }
}

fn multi<'a>(obj: &'a Value, key: &str) -> Result<Vec<&'a Value>, ScimError> {
    let items: Vec<&Value> = match get_ci(obj, key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => return Err(invalid(format!("'{key}' must be a list"))),
    };
    if items.len() > MAX_MULTI_VALUES {
        return Err(invalid(format!(
            "'{key}' has more than {MAX_MULTI_VALUES} values"
        )));
    }
    Ok(items)
}

fn required_string(obj: &Value, key: &str) -> Result<String, ScimError> {
    match opt_string(obj, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(format!("'{key}' is required"))),
    }
}

fn fmt_time(t: &OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

fn meta_json(meta: &Meta, resource_type: &str, location: &str) -> Value {
    let mut m = Map::new();
    m.insert("resourceType".into(), resource_type.into());
    if let Some(c) = meta.created.as_ref().and_then(fmt_time) {
        m.insert("created".into(), c.into());
    }
    if let Some(c) = meta.last_modified.as_ref().and_then(fmt_time) {
        m.insert("lastModified".into(), c.into());
    }
    if let Some(v) = meta.etag() {
        m.insert("version".into(), v.into());
    }
    m.insert("location".into(), location.into());
    Value::Object(m)
}

fn put_opt(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(key.into(), v.clone().into());
    }
}

impl User {
    /// Reads a User from a request body; unknown attributes and read-only ones are ignored.
    pub fn from_json(v: &Value) -> Result<User, ScimError> {
        if !v.is_object() {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                "the body must be a JSON object",
            ));
        }
        let name = match get_ci(v, "name") {
            None | Some(Value::Null) => None,
            Some(n @ Value::Object(_)) => {
                let name = Name {
                    formatted: opt_string(n, "formatted")?,
                    family_name: opt_string(n, "familyName")?,
                    given_name: opt_string(n, "givenName")?,
                };
                (name != Name::default()).then_some(name)
            }
            Some(_) => return Err(invalid("'name' must be an object")),
        };
        let mut emails = Vec::new();
        for e in multi(v, "emails")? {
            let Some(value) = opt_string(e, "value")? else {
                continue;
            };
            emails.push(Email {
                value,
                kind: opt_string(e, "type")?,
                primary: opt_bool(e, "primary")?,
            });
        }
        Ok(User {
            id: String::new(),
            external_id: opt_string(v, "externalId")?,
            user_name: required_string(v, "userName")?,
            name,
            display_name: opt_string(v, "displayName")?,
            emails,
            active: opt_bool(v, "active")?,
            groups: Vec::new(),
            meta: Meta::default(),
        })
    }

    /// The JSON representation; `base` is the SCIM root URL (no trailing slash) used for locations.
    pub fn to_json(&self, base: &str) -> Value {
        let mut m = Map::new();
        m.insert("schemas".into(), json!([USER_SCHEMA]));
        m.insert("id".into(), self.id.clone().into());
        put_opt(&mut m, "externalId", &self.external_id);
        m.insert("userName".into(), self.user_name.clone().into());
        if let Some(n) = &self.name {
            let mut nm = Map::new();
            put_opt(&mut nm, "formatted", &n.formatted);
            put_opt(&mut nm, "familyName", &n.family_name);
            put_opt(&mut nm, "givenName", &n.given_name);
            m.insert("name".into(), Value::Object(nm));
        }
        put_opt(&mut m, "displayName", &self.display_name);
        if !self.emails.is_empty() {
            let list = self
                .emails
                .iter()
                .map(|e| {
                    let mut em = Map::new();
                    em.insert("value".into(), e.value.clone().into());
                    put_opt(&mut em, "type", &e.kind);
                    if let Some(p) = e.primary {
                        em.insert("primary".into(), p.into());
                    }
                    Value::Object(em)
                })
                .collect();
            m.insert("emails".into(), Value::Array(list));
        }
        if let Some(a) = self.active {
            m.insert("active".into(), a.into());
        }
        if !self.groups.is_empty() {
            let list = self
                .groups
                .iter()
                .map(|g| {
                    let mut gm = Map::new();
                    gm.insert("value".into(), g.value.clone().into());
                    gm.insert("$ref".into(), format!("{base}/Groups/{}", g.value).into());
                    put_opt(&mut gm, "display", &g.display);
                    Value::Object(gm)
                })
                .collect();
            m.insert("groups".into(), Value::Array(list));
        }
        m.insert(
            "meta".into(),
            meta_json(&self.meta, "User", &format!("{base}/Users/{}", self.id)),
        );
        Value::Object(m)
    }
}

impl Group {
    /// Reads a Group from a request body; unknown attributes and read-only ones are ignored.
    pub fn from_json(v: &Value) -> Result<Group, ScimError> {
        if !v.is_object() {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                "the body must be a JSON object",
            ));
        }
        let mut members = Vec::new();
        for mv in multi(v, "members")? {
            let value = match opt_string(mv, "value")? {
                Some(s) => s,
                // A member given only by its $ref: the id is the last segment.
                None => match opt_string(mv, "$ref")? {
                    Some(r) => r.rsplit('/').next().unwrap_or_default().to_string(),
                    None => return Err(invalid("each member needs a 'value' (the member's id)")),
                },
            };
            if value.is_empty() {
                return Err(invalid("each member needs a 'value' (the member's id)"));
            }
            if members.iter().any(|m: &Member| m.value == value) {
                continue;
            }
            let kind = opt_string(mv, "type")?.or_else(|| {
                opt_string(mv, "$ref")
                    .ok()
                    .flatten()
                    .and_then(|r| r.contains("/Groups/").then(|| "Group".to_string()))
            });
            members.push(Member { value, kind });
        }
        Ok(Group {
            id: String::new(),
            external_id: opt_string(v, "externalId")?,
            display_name: required_string(v, "displayName")?,
            members,
            meta: Meta::default(),
        })
    }

    /// The JSON representation; `base` is the SCIM root URL (no trailing slash) used for locations.
    pub fn to_json(&self, base: &str) -> Value {
        let mut m = Map::new();
        m.insert("schemas".into(), json!([GROUP_SCHEMA]));
        m.insert("id".into(), self.id.clone().into());
        put_opt(&mut m, "externalId", &self.external_id);
        m.insert("displayName".into(), self.display_name.clone().into());
        if !self.members.is_empty() {
            let list = self
                .members
                .iter()
                .map(|mb| {
                    let mut mm = Map::new();
                    mm.insert("value".into(), mb.value.clone().into());
                    let is_group = mb
                        .kind
                        .as_deref()
                        .is_some_and(|k| k.eq_ignore_ascii_case("group"));
                    let coll = if is_group { "Groups" } else { "Users" };
                    mm.insert("$ref".into(), format!("{base}/{coll}/{}", mb.value).into());
                    put_opt(&mut mm, "type", &mb.kind);
                    Value::Object(mm)
                })
                .collect();
            m.insert("members".into(), Value::Array(list));
        }
        m.insert(
            "meta".into(),
            meta_json(&self.meta, "Group", &format!("{base}/Groups/{}", self.id)),
        );
        Value::Object(m)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn user_round_trips_and_ignores_unknown() {
        let v = json!({"schemas":[USER_SCHEMA], "UserName":"bob", "id":"evil", "title":"x",
            "name":{"givenName":"Bob"}, "emails":[{"value":"b@x.test","primary":"True","type":"work"}],
            "active":"False", "groups":[{"value":"g"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"d"}});
        let u = User::from_json(&v).unwrap();
        assert_eq!(u.user_name, "bob");
        assert_eq!(u.id, "");
        assert_eq!(u.active, Some(false));
        assert_eq!(u.emails[0].primary, Some(true));
        assert!(u.groups.is_empty());
        let out = u.to_json("http://h/scim");
        assert_eq!(out["name"]["givenName"], "Bob");
        assert_eq!(out["meta"]["resourceType"], "User");
        assert!(out.get("title").is_none());
    }

    #[test]
    fn user_requires_user_name_and_bounds_strings() {
        assert!(User::from_json(&json!({"displayName":"x"})).is_err());
        assert!(User::from_json(&json!({"userName":"a".repeat(MAX_STRING_LEN + 1)})).is_err());
        assert!(User::from_json(&json!({"userName":"a","active":"maybe"})).is_err());
        assert!(User::from_json(&json!([1])).is_err());
    }

    #[test]
    fn group_members_dedup_and_ref() {
        let g = Group::from_json(
            &json!({"displayName":"g","members":[{"value":"u1"},{"value":"u1"},
            {"$ref":"http://h/scim/Groups/g2"}]}),
        )
        .unwrap();
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.members[1].value, "g2");
        assert_eq!(g.members[1].kind.as_deref(), Some("Group"));
        let out = g.to_json("http://h/scim");
        assert_eq!(out["members"][0]["$ref"], "http://h/scim/Users/u1");
        assert_eq!(out["members"][1]["$ref"], "http://h/scim/Groups/g2");
        let too_many: Vec<Value> = (0..=MAX_MULTI_VALUES)
            .map(|i| json!({"value": i.to_string()}))
            .collect();
        assert!(Group::from_json(&json!({"displayName":"g","members":too_many})).is_err());
    }
}
