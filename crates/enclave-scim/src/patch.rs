//! RFC 7644 §3.5.2 PATCH: parsing and application to a resource's JSON.
//!
//! Accepts the shapes Okta and Entra ID send: capitalised ops (`Replace`), string
//! booleans (`"False"`, coerced when the JSON is read back into a resource), no-path
//! replaces with an object value, member adds and value-filtered removes.

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{get_ci, parse_attr_path, AttrPath, CompareOp, Filter, Literal};

/// Schema URN of PATCH request bodies.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations accepted in one PATCH request.
pub const MAX_PATCH_OPS: usize = 1000;

/// The kind of a PATCH operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `remove`
    Remove,
}

/// A PATCH target: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with its sub-attribute when written `attr.sub`).
    pub attr: AttrPath,
    /// The value filter of `attr[filter]`.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter (`attr[filter].sub`).
    pub filter_sub: Option<String>,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// add / replace / remove.
    pub op: PatchOpKind,
    /// Target, when given.
    pub path: Option<PatchPath>,
    /// Value, when given.
    pub value: Option<Value>,
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidSyntax", detail)
}
fn bad_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidPath", detail)
}
fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("noTarget", detail)
}

/// Parses a PATCH path.
pub fn parse_path(s: &str) -> Result<PatchPath, ScimError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(bad_path("the path is empty"));
    }
    if s.len() > crate::filter::MAX_FILTER_LEN {
        return Err(bad_path("the path is too long"));
    }
    match s.find('[') {
        None => Ok(PatchPath {
            attr: parse_attr_path(s).map_err(|e| bad_path(e.0))?,
            filter: None,
            filter_sub: None,
        }),
        Some(open) => {
            let close = s
                .rfind(']')
                .ok_or_else(|| bad_path(format!("path '{s}' lacks ']'")))?;
            if close < open {
                return Err(bad_path(format!("path '{s}' is malformed")));
            }
            let attr = parse_attr_path(&s[..open]).map_err(|e| bad_path(e.0))?;
            if attr.sub.is_some() {
                return Err(bad_path(format!(
                    "path '{s}': a value filter applies to an attribute"
                )));
            }
            let filter =
                Filter::parse_value_filter(&s[open + 1..close]).map_err(|e| bad_path(e.0))?;
            let rest = &s[close + 1..];
            let filter_sub = if rest.is_empty() {
                None
            } else if let Some(sub) = rest.strip_prefix('.') {
                parse_attr_path(sub).map_err(|e| bad_path(e.0))?;
                Some(sub.to_string())
            } else {
                return Err(bad_path(format!("path '{s}' has text after ']'")));
            };
            Ok(PatchPath {
                attr,
                filter: Some(filter),
                filter_sub,
            })
        }
    }
}

/// Parses a PATCH request body (`schemas` must name the PatchOp message).
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let schemas_ok = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
    if !schemas_ok {
        return Err(syntax(format!(
            "a PATCH body must list \"{PATCH_SCHEMA}\" in 'schemas'"
        )));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("a PATCH body needs an 'Operations' list"))?;
    if ops.is_empty() {
        return Err(syntax("'Operations' is empty"));
    }
    if ops.len() > MAX_PATCH_OPS {
        return Err(syntax(format!(
            "at most {MAX_PATCH_OPS} operations per PATCH"
        )));
    }
    ops.iter()
        .map(|o| {
            let op = match get_ci(o, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => PatchOpKind::Add,
                Some("replace") => PatchOpKind::Replace,
                Some("remove") => PatchOpKind::Remove,
                _ => return Err(syntax("each operation needs 'op': add, replace or remove")),
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(parse_path(p)?),
                Some(_) => return Err(bad_path("'path' must be a string")),
            };
            let value = get_ci(o, "value").cloned();
            if path.is_none()
                && op != PatchOpKind::Remove
                && !matches!(value, Some(Value::Object(_)))
            {
                return Err(syntax(
                    "an operation without 'path' needs an object 'value'",
                ));
            }
            if path.is_none() && op == PatchOpKind::Remove {
                return Err(no_target("a remove operation needs a 'path'"));
            }
            if op != PatchOpKind::Remove && value.is_none() {
                return Err(syntax("add and replace operations need a 'value'"));
            }
            Ok(PatchOperation { op, path, value })
        })
        .collect()
}

/// What the PATCH applier needs to know about a resource type's schema.
#[derive(Debug, Clone, Copy)]
pub struct PatchSchema {
    /// The core schema URN (paths may be prefixed with it).
    pub core_urn: &'static str,
    /// Multi-valued attributes.
    pub multi_valued: &'static [&'static str],
    /// Read-only attributes a path may not target.
    pub read_only: &'static [&'static str],
}

fn key_ci(m: &Map<String, Value>, name: &str) -> String {
    m.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn same_item(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) if a.is_object() && b.is_object() => x == y,
        _ => a == b,
    }
}

fn merge(target: &mut Value, value: &Value) {
    match (target.as_object_mut(), value.as_object()) {
        (Some(t), Some(v)) => {
            for (k, val) in v {
                let key = key_ci(t, k);
                t.insert(key, val.clone());
            }
        }
        _ => *target = value.clone(),
    }
}

/// Applies PATCH operations to a resource's JSON in order; all or nothing is up to the caller
/// (it works on a copy and stores the result only when every operation succeeded).
pub fn apply_patch(
    resource: &mut Value,
    ops: &[PatchOperation],
    schema: &PatchSchema,
) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(p) => apply_one(resource, op.op, p, op.value.as_ref(), schema, true)?,
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return Err(syntax(
                        "an operation without 'path' needs an object 'value'",
                    ));
                };
                for (k, v) in values {
                    let Ok(path) = parse_path(k) else { continue };
                    // Extension objects keyed by their URN (`urn:...:enterprise:2.0:User`) are not ours.
                    apply_one(resource, op.op, &path, Some(v), schema, false)?;
                }
            }
        }
    }
    Ok(())
}

fn apply_one(
    res: &mut Value,
    op: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &PatchSchema,
    explicit: bool,
) -> Result<(), ScimError> {
    if let Some(urn) = &path.attr.urn {
        if !urn.eq_ignore_ascii_case(schema.core_urn) {
            // An extension attribute (e.g. the enterprise extension): ignored, as unknown attributes are.
            return Ok(());
        }
    }
    let attr = path.attr.attr.as_str();
    if schema
        .read_only
        .iter()
        .any(|r| r.eq_ignore_ascii_case(attr))
    {
        return if explicit {
            Err(ScimError::bad_request(
                "mutability",
                format!("'{attr}' is read-only"),
            ))
        } else {
            Ok(())
        };
    }
    let multi = schema
        .multi_valued
        .iter()
        .any(|m| m.eq_ignore_ascii_case(attr));
    let Some(obj) = res.as_object_mut() else {
        return Err(syntax("the resource is not an object"));
    };
    let key = key_ci(obj, attr);
    let value = match value {
        Some(Value::Null) if op != PatchOpKind::Remove => return remove_key(obj, &key, path),
        v => v,
    };

    if let Some(filter) = &path.filter {
        if !multi {
            return Err(bad_path(format!(
                "'{attr}' is not multi-valued; a value filter does not apply"
            )));
        }
        let items = obj
            .entry(key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !items.is_array() {
            *items = Value::Array(Vec::new());
        }
        let Some(arr) = items.as_array_mut() else {
            return Ok(());
        };
        let matched: Vec<usize> = (0..arr.len())
            .filter(|&i| filter.matches(&arr[i]))
            .collect();
        match op {
            PatchOpKind::Remove => {
                match &path.filter_sub {
                    Some(sub) => {
                        for &i in &matched {
                            if let Some(o) = arr[i].as_object_mut() {
                                let k = key_ci(o, sub);
                                o.remove(&k);
                            }
                        }
                    }
                    None => {
                        let mut i = 0;
                        arr.retain(|_| {
                            let keep = !matched.contains(&i);
                            i += 1;
                            keep
                        });
                    }
                }
                if arr.is_empty() {
                    obj.remove(&key);
                }
                Ok(())
            }
            PatchOpKind::Add | PatchOpKind::Replace => {
                let Some(value) = value else {
                    return Err(syntax("a value is required"));
                };
                if matched.is_empty() {
                    // Entra ID adds `emails[type eq "work"].value` to users without a work e-mail:
                    // create the element the filter describes when the filter is a single `type eq`.
                    if let Filter::Compare {
                        path: fp,
                        op: CompareOp::Eq,
                        value: Literal::String(s),
                    } = filter
                    {
                        if fp.sub.is_none()
                            && fp.urn.is_none()
                            && fp.attr.eq_ignore_ascii_case("type")
                        {
                            let mut new = Map::new();
                            new.insert(fp.attr.clone(), Value::String(s.clone()));
                            let mut new = Value::Object(new);
                            match &path.filter_sub {
                                Some(sub) => {
                                    if let Some(o) = new.as_object_mut() {
                                        o.insert(sub.clone(), value.clone());
                                    }
                                }
                                None => merge(&mut new, value),
                            }
                            arr.push(new);
                            return Ok(());
                        }
                    }
                    return Err(no_target(format!(
                        "no value of '{attr}' matches the filter"
                    )));
                }
                for &i in &matched {
                    match &path.filter_sub {
                        Some(sub) => {
                            if let Some(o) = arr[i].as_object_mut() {
                                let k = key_ci(o, sub);
                                o.insert(k, value.clone());
                            }
                        }
                        None => merge(&mut arr[i], value),
                    }
                }
                Ok(())
            }
        }
    } else if let Some(sub) = &path.attr.sub {
        match op {
            PatchOpKind::Remove => {
                match obj.get_mut(&key) {
                    Some(Value::Object(o)) => {
                        let k = key_ci(o, sub);
                        o.remove(&k);
                    }
                    Some(Value::Array(a)) => {
                        for item in a.iter_mut() {
                            if let Some(o) = item.as_object_mut() {
                                let k = key_ci(o, sub);
                                o.remove(&k);
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            PatchOpKind::Add | PatchOpKind::Replace => {
                let Some(value) = value else {
                    return Err(syntax("a value is required"));
                };
                let target = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
                match target {
                    Value::Object(o) => {
                        let k = key_ci(o, sub);
                        o.insert(k, value.clone());
                    }
                    Value::Array(a) if !a.is_empty() => {
                        for item in a.iter_mut() {
                            if let Some(o) = item.as_object_mut() {
                                let k = key_ci(o, sub);
                                o.insert(k, value.clone());
                            }
                        }
                    }
                    other => {
                        let mut o = Map::new();
                        o.insert(sub.clone(), value.clone());
                        *other = Value::Object(o);
                    }
                }
                Ok(())
            }
        }
    } else {
        match op {
            PatchOpKind::Remove => {
                if let (true, Some(v)) = (multi, value) {
                    // `{"op":"remove","path":"members","value":[{"value":"id"}]}`: remove those values.
                    let gone: Vec<Value> = match v {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    if let Some(Value::Array(arr)) = obj.get_mut(&key) {
                        arr.retain(|item| !gone.iter().any(|g| same_item(item, g)));
                        if arr.is_empty() {
                            obj.remove(&key);
                        }
                    }
                    return Ok(());
                }
                remove_key(obj, &key, path)
            }
            PatchOpKind::Add | PatchOpKind::Replace => {
                let Some(value) = value else {
                    return Err(syntax("a value is required"));
                };
                if multi {
                    let new: Vec<Value> = match value {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    let existing = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                    if op == PatchOpKind::Replace || !existing.is_array() {
                        *existing = Value::Array(Vec::new());
                    }
                    if let Some(arr) = existing.as_array_mut() {
                        for n in new {
                            if let Some(pos) = arr.iter().position(|e| same_item(e, &n)) {
                                merge(&mut arr[pos], &n);
                            } else {
                                arr.push(n);
                            }
                        }
                    }
                    return Ok(());
                }
                match obj.get_mut(&key) {
                    Some(existing @ Value::Object(_)) if value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        obj.insert(key, value.clone());
                    }
                }
                Ok(())
            }
        }
    }
}

fn remove_key(obj: &mut Map<String, Value>, key: &str, _path: &PatchPath) -> Result<(), ScimError> {
    obj.remove(key);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::{Group, User};
    use serde_json::json;

    const USER: PatchSchema = PatchSchema {
        core_urn: crate::model::USER_SCHEMA,
        multi_valued: &["emails", "groups"],
        read_only: &["id", "meta", "schemas", "groups"],
    };
    const GROUP: PatchSchema = PatchSchema {
        core_urn: crate::model::GROUP_SCHEMA,
        multi_valued: &["members"],
        read_only: &["id", "meta", "schemas"],
    };

    fn patch(res: &Value, ops: Value, schema: &PatchSchema) -> Result<Value, ScimError> {
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": ops});
        let ops = parse_patch(&body)?;
        let mut r = res.clone();
        apply_patch(&mut r, &ops, schema)?;
        Ok(r)
    }

    fn user() -> Value {
        json!({"schemas":[crate::model::USER_SCHEMA],"id":"u1","userName":"alice","active":true,
               "name":{"givenName":"Alice","familyName":"L"},
               "emails":[{"value":"a@w.test","type":"work","primary":true}]})
    }

    #[test]
    fn okta_replace_without_path() {
        let r = patch(
            &user(),
            json!([{"op":"replace","value":{"active":false,"id":"x"}}]),
            &USER,
        )
        .unwrap();
        assert_eq!(r["active"], false);
        assert_eq!(r["id"], "u1");
        let r = patch(
            &user(),
            json!([{"op":"replace","value":{"name":{"givenName":"Al"}}}]),
            &USER,
        )
        .unwrap();
        assert_eq!(r["name"]["givenName"], "Al");
        assert_eq!(
            r["name"]["familyName"], "L",
            "sub-attributes not given are kept"
        );
    }

    #[test]
    fn entra_capitalised_ops_and_string_booleans() {
        let r = patch(
            &user(),
            json!([{"op":"Replace","path":"active","value":"False"}]),
            &USER,
        )
        .unwrap();
        assert_eq!(User::from_json(&r).unwrap().active, Some(false));
        let r = patch(
            &user(),
            json!([{"op":"Add","path":"emails[type eq \"home\"].value","value":"a@h.test"},
                   {"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@w.test"},
                   {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"x"},
                   {"op":"Add","path":"title","value":"Dr"},
                   {"op":"Replace","path":"name.familyName","value":"M"}]),
            &USER,
        )
        .unwrap();
        let u = User::from_json(&r).unwrap();
        assert_eq!(u.emails.len(), 2);
        assert_eq!(u.emails[0].value, "new@w.test");
        assert_eq!(u.emails[1].kind.as_deref(), Some("home"));
        assert_eq!(u.name.unwrap().family_name.as_deref(), Some("M"));
    }

    #[test]
    fn group_membership() {
        let g = json!({"schemas":[crate::model::GROUP_SCHEMA],"id":"g","displayName":"G","members":[{"value":"u1"}]});
        let r = patch(
            &g,
            json!([{"op":"add","path":"members","value":[{"value":"u2"},{"value":"u1"}]}]),
            &GROUP,
        )
        .unwrap();
        assert_eq!(Group::from_json(&r).unwrap().members.len(), 2);
        let r = patch(
            &r,
            json!([{"op":"remove","path":"members[value eq \"u1\"]"}]),
            &GROUP,
        )
        .unwrap();
        let members = Group::from_json(&r).unwrap().members;
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].value, "u2");
        let r = patch(
            &r,
            json!([{"op":"Remove","path":"members","value":[{"value":"u2"}]}]),
            &GROUP,
        )
        .unwrap();
        assert!(Group::from_json(&r).unwrap().members.is_empty());
        let r = patch(
            &g,
            json!([{"op":"replace","path":"members","value":[{"value":"u9"}]}]),
            &GROUP,
        )
        .unwrap();
        assert_eq!(Group::from_json(&r).unwrap().members[0].value, "u9");
        let r = patch(&g, json!([{"op":"remove","path":"members"}]), &GROUP).unwrap();
        assert!(r.get("members").is_none());
    }

    #[test]
    fn remove_attributes() {
        let r = patch(
            &user(),
            json!([{"op":"remove","path":"name.givenName"},{"op":"remove","path":"emails"}]),
            &USER,
        )
        .unwrap();
        assert!(r["name"].get("givenName").is_none());
        assert!(r.get("emails").is_none());
        let r = patch(
            &user(),
            json!([{"op":"replace","path":"displayName","value":null}]),
            &USER,
        )
        .unwrap();
        assert!(r.get("displayName").is_none());
    }

    #[test]
    fn bad_operations() {
        let cases = [
            (
                json!({"Operations":[{"op":"add","path":"x","value":1}]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"move","path":"x","value":1}]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"remove"}]}),
                "noTarget",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"add","value":"x"}]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"add","path":"emails[type eq]","value":"x"}]}),
                "invalidPath",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"add","path":"a.b.c","value":"x"}]}),
                "invalidPath",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"add","path":"emails[type eq \"w\"]x","value":"x"}]}),
                "invalidPath",
            ),
            (
                json!({"schemas":[PATCH_SCHEMA],"Operations":[{"op":"add","path":"userName"}]}),
                "invalidSyntax",
            ),
        ];
        for (body, t) in cases {
            let e = parse_patch(&body).unwrap_err();
            assert_eq!(e.scim_type, Some(t), "{body}");
        }
        let e = patch(&user(), json!([{"op":"replace","path":"emails[type eq \"x\" or primary eq true].type","value":"y"},
            {"op":"replace","path":"emails[value co \"nope\"]","value":{"type":"x"}}]), &USER).unwrap_err();
        assert_eq!(e.scim_type, Some("noTarget"));
        let e = patch(
            &user(),
            json!([{"op":"replace","path":"id","value":"x"}]),
            &USER,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("mutability"));
        let e = patch(
            &user(),
            json!([{"op":"replace","path":"userName[value eq \"x\"]","value":"x"}]),
            &USER,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidPath"));
    }
}
