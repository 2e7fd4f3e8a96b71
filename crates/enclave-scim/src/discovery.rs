//! Discovery documents (RFC 7644 §4, RFC 7643 §5–7): ServiceProviderConfig, ResourceTypes, Schemas.

use serde_json::{json, Value};

use crate::model::{GROUP_SCHEMA, USER_SCHEMA};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A ListResponse over all of `items` (discovery collections are small and not paginated).
pub fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

/// The ServiceProviderConfig document: PATCH, filter and ETags supported; no bulk, sort or password change.
pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The SCIM token of the identity source, sent as 'Authorization: Bearer <token>'.",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

/// The User and Group resource types.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RT_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": USER_SCHEMA, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": [RT_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group", "schema": GROUP_SCHEMA, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

#[allow(clippy::too_many_arguments)]
fn attr(
    name: &str,
    ty: &str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &str,
    uniqueness: &str,
    description: &str,
) -> Value {
    json!({
        "name": name, "type": ty, "multiValued": multi, "description": description,
        "required": required, "caseExact": case_exact, "mutability": mutability,
        "returned": "default", "uniqueness": uniqueness
    })
}

fn with(mut a: Value, key: &str, v: Value) -> Value {
    if let Some(o) = a.as_object_mut() {
        o.insert(key.to_string(), v);
    }
    a
}

/// The User and Group schema documents, listing the attributes this crate stores. Group
/// `members` lists `value`, `$ref` and `type`, as RFC 7643 §8.7.1 does.
pub fn schemas(base: &str) -> Vec<Value> {
    let s = |n, d| attr(n, "string", false, false, false, "readWrite", "none", d);
    let user_attrs = vec![
        attr(
            "userName",
            "string",
            false,
            true,
            false,
            "readWrite",
            "server",
            "Unique identifier for the User, used to sign in.",
        ),
        with(
            attr(
                "name",
                "complex",
                false,
                false,
                false,
                "readWrite",
                "none",
                "The components of the user's name.",
            ),
            "subAttributes",
            json!([
                s("formatted", "The full name."),
                s("familyName", "The family name."),
                s("givenName", "The given name."),
            ]),
        ),
        s("displayName", "The name of the User, suitable for display."),
        with(
            attr(
                "emails",
                "complex",
                true,
                false,
                false,
                "readWrite",
                "none",
                "Email addresses for the user.",
            ),
            "subAttributes",
            json!([
                s("value", "Email address."),
                with(
                    s("type", "A label: work, home or other."),
                    "canonicalValues",
                    json!(["work", "home", "other"])
                ),
                attr(
                    "primary",
                    "boolean",
                    false,
                    false,
                    false,
                    "readWrite",
                    "none",
                    "The preferred address."
                ),
            ]),
        ),
        attr(
            "active",
            "boolean",
            false,
            false,
            false,
            "readWrite",
            "none",
            "Whether the account is enabled.",
        ),
        with(
            attr(
                "groups",
                "complex",
                true,
                false,
                false,
                "readOnly",
                "none",
                "The groups the user belongs to.",
            ),
            "subAttributes",
            json!([
                attr(
                    "value",
                    "string",
                    false,
                    false,
                    false,
                    "readOnly",
                    "none",
                    "The group's id."
                ),
                with(
                    attr(
                        "$ref",
                        "reference",
                        false,
                        false,
                        false,
                        "readOnly",
                        "none",
                        "The group's URI."
                    ),
                    "referenceTypes",
                    json!(["Group"])
                ),
                attr(
                    "display",
                    "string",
                    false,
                    false,
                    false,
                    "readOnly",
                    "none",
                    "The group's display name."
                ),
            ]),
        ),
    ];
    let group_attrs = vec![
        attr(
            "displayName",
            "string",
            false,
            true,
            false,
            "readWrite",
            "none",
            "A human-readable name for the Group.",
        ),
        with(
            attr(
                "members",
                "complex",
                true,
                false,
                false,
                "readWrite",
                "none",
                "The members of the Group.",
            ),
            "subAttributes",
            json!([
                attr(
                    "value",
                    "string",
                    false,
                    false,
                    true,
                    "immutable",
                    "none",
                    "The member's id."
                ),
                with(
                    attr(
                        "$ref",
                        "reference",
                        false,
                        false,
                        false,
                        "immutable",
                        "none",
                        "The member's URI."
                    ),
                    "referenceTypes",
                    json!(["User", "Group"])
                ),
                with(
                    attr(
                        "type",
                        "string",
                        false,
                        false,
                        false,
                        "immutable",
                        "none",
                        "User or Group."
                    ),
                    "canonicalValues",
                    json!(["User", "Group"])
                ),
            ]),
        ),
    ];
    vec![
        json!({
            "schemas": [SCHEMA_SCHEMA], "id": USER_SCHEMA, "name": "User", "description": "User Account",
            "attributes": user_attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
        }),
        json!({
            "schemas": [SCHEMA_SCHEMA], "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
            "attributes": group_attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}")}
        }),
    ]
}
