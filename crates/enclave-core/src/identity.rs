//! Identity sources: the organization's OIDC providers and LDAP/AD directories, who of their
//! users are admitted, how their groups map onto Enclave's groups, roles and projects, and how
//! accounts created at first login are named. Pure rules; the protocols live in
//! `enclave-oidc` and `enclave-ldap`, persistence in the store.

use crate::error::{Error, Result};
use crate::model::ProjectRole;
use crate::names;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most entries in an admission list (domains or groups).
pub const MAX_ADMISSION_ENTRIES: usize = 100;
/// Most group mappings per source.
pub const MAX_MAPPINGS: usize = 200;
/// Longest IdP group name, URL, DN or filter accepted in a source's settings.
pub const MAX_SETTING_CHARS: usize = 1024;
/// Platform-wide roles a group mapping may grant.
pub const MAPPABLE_PLATFORM_ROLES: [&str; 2] = ["platform_admin", "security_auditor"];
/// Shortest and longest LDAP sync interval, in seconds.
pub const SYNC_INTERVAL_BOUNDS: (u64, u64) = (30, 86_400);

/// The protocol of an identity source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// OpenID Connect single sign-on.
    Oidc,
    /// LDAP or Active Directory password login.
    Ldap,
}

impl SourceKind {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Oidc => "oidc",
            SourceKind::Ldap => "ldap",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<SourceKind> {
        match s {
            "oidc" => Some(SourceKind::Oidc),
            "ldap" => Some(SourceKind::Ldap),
            _ => None,
        }
    }
}

/// Which of a source's users may use Enclave at all (the seeds' three rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionMode {
    /// Everyone the source authenticates.
    #[default]
    All,
    /// Users whose (verified) email is in one of the listed domains.
    Domains,
    /// Members of any of the listed IdP groups.
    Groups,
}

/// A source's admission rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// The rule.
    pub mode: AdmissionMode,
    /// Email domains for `domains` (case-insensitive, exact: `corp.example` does not admit
    /// `sub.corp.example`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// IdP group names for `groups` (case-insensitive).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Admission {
    /// Checks the rule is usable: the list its mode needs is present and well formed.
    pub fn validate(&self) -> Result<()> {
        if self.domains.len() > MAX_ADMISSION_ENTRIES || self.groups.len() > MAX_ADMISSION_ENTRIES {
            return Err(Error::invalid(
                "admission",
                format!(
                    "at most {MAX_ADMISSION_ENTRIES} domains and {MAX_ADMISSION_ENTRIES} groups"
                ),
            ));
        }
        for d in &self.domains {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.contains('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                return Err(Error::invalid(
                    "admission.domains",
                    format!("'{}' is not a domain name such as corp.example", clip(d)),
                ));
            }
        }
        for g in &self.groups {
            setting("admission.groups", g, true)?;
        }
        match self.mode {
            AdmissionMode::Domains if self.domains.is_empty() => Err(Error::invalid(
                "admission.domains",
                "admission by domain needs at least one domain",
            )),
            AdmissionMode::Groups if self.groups.is_empty() => Err(Error::invalid(
                "admission.groups",
                "admission by group needs at least one group",
            )),
            _ => Ok(()),
        }
    }

    /// Whether a user with this email and these IdP groups is admitted; the error is the
    /// reason, for the audit trail and the refusal page. An email the provider marks as not
    /// verified never admits by domain.
    pub fn admits(
        &self,
        email: Option<&str>,
        email_verified: Option<bool>,
        groups: &[String],
    ) -> std::result::Result<(), String> {
        match self.mode {
            AdmissionMode::All => Ok(()),
            AdmissionMode::Domains => {
                let Some(email) = email else {
                    return Err("no email address came from the identity source".into());
                };
                if email_verified == Some(false) {
                    return Err("the identity source has not verified the email address".into());
                }
                let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                if self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                    Ok(())
                } else {
                    Err(format!("email domain '{}' is not admitted", clip(domain)))
                }
            }
            AdmissionMode::Groups => {
                if groups
                    .iter()
                    .any(|g| self.groups.iter().any(|a| a.eq_ignore_ascii_case(g)))
                {
                    Ok(())
                } else {
                    Err("not a member of any admitted group".into())
                }
            }
        }
    }
}

/// One rule turning membership of an IdP group into Enclave access. Every field besides
/// `idp_group` is optional; a rule may do several things at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// The IdP group (case-insensitive).
    pub idp_group: String,
    /// An Enclave group its members join.
    #[serde(default)]
    pub group: Option<String>,
    /// A platform-wide role its members hold (see [`MAPPABLE_PLATFORM_ROLES`]).
    #[serde(default)]
    pub platform_role: Option<String>,
    /// A project its members join, with `project_role`.
    #[serde(default)]
    pub project: Option<String>,
    /// The role in `project`.
    #[serde(default)]
    pub project_role: Option<ProjectRole>,
}

impl GroupMapping {
    /// Checks names and that the rule grants something.
    pub fn validate(&self) -> Result<()> {
        setting("mappings.idp_group", &self.idp_group, true)?;
        if let Some(g) = &self.group {
            names::slug("mappings.group", g)?;
        }
        if let Some(r) = &self.platform_role {
            if !MAPPABLE_PLATFORM_ROLES.contains(&r.as_str()) {
                return Err(Error::invalid(
                    "mappings.platform_role",
                    format!(
                        "platform_role must be one of {}",
                        MAPPABLE_PLATFORM_ROLES.join(", ")
                    ),
                ));
            }
        }
        match (&self.project, self.project_role) {
            (Some(p), Some(_)) => names::slug("mappings.project", p)?,
            (None, None) => {}
            _ => {
                return Err(Error::invalid(
                    "mappings.project_role",
                    "a project mapping needs both project and project_role",
                ))
            }
        }
        if self.group.is_none() && self.platform_role.is_none() && self.project.is_none() {
            return Err(Error::invalid(
                "mappings",
                format!(
                    "the mapping of '{}' grants nothing: give a group, platform_role or project",
                    clip(&self.idp_group)
                ),
            ));
        }
        Ok(())
    }
}

/// What a user's IdP groups grant under a source's mappings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappingPlan {
    /// Enclave groups to be a member of.
    pub groups: BTreeSet<String>,
    /// Platform-wide roles to hold.
    pub platform_roles: BTreeSet<String>,
    /// Projects to be a member of, each with the highest role any rule gives.
    pub projects: BTreeMap<String, ProjectRole>,
}

/// Applies the mappings to the groups a user has now.
pub fn plan_mappings(mappings: &[GroupMapping], idp_groups: &[String]) -> MappingPlan {
    let mut plan = MappingPlan::default();
    for m in mappings {
        if !idp_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&m.idp_group))
        {
            continue;
        }
        if let Some(g) = &m.group {
            plan.groups.insert(g.clone());
        }
        if let Some(r) = &m.platform_role {
            plan.platform_roles.insert(r.clone());
        }
        if let (Some(p), Some(role)) = (&m.project, m.project_role) {
            let e = plan.projects.entry(p.clone()).or_insert(role);
            if rank(role) > rank(*e) {
                *e = role;
            }
        }
    }
    plan
}

fn rank(r: ProjectRole) -> u8 {
    match r {
        ProjectRole::Viewer => 0,
        ProjectRole::Member => 1,
        ProjectRole::Owner => 2,
    }
}

/// Something a mapping granted, remembered so that a later refresh can take away exactly what
/// the mapping gave (and nothing an admin granted by hand).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Managed {
    /// Membership of an Enclave group.
    Group(String),
    /// A platform-wide role binding.
    PlatformRole(String),
    /// Membership of a project with a role.
    Project(String, ProjectRole),
}

impl MappingPlan {
    /// The plan as managed items.
    pub fn items(&self) -> BTreeSet<Managed> {
        let mut s = BTreeSet::new();
        s.extend(self.groups.iter().cloned().map(Managed::Group));
        s.extend(
            self.platform_roles
                .iter()
                .cloned()
                .map(Managed::PlatformRole),
        );
        s.extend(
            self.projects
                .iter()
                .map(|(p, r)| Managed::Project(p.clone(), *r)),
        );
        s
    }
}

/// The changes that move a user from what the mappings granted before to what they grant now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappingChanges {
    /// To grant.
    pub add: Vec<Managed>,
    /// To take away.
    pub remove: Vec<Managed>,
}

/// Compares what was granted with what is due now.
pub fn mapping_changes(before: &BTreeSet<Managed>, now: &BTreeSet<Managed>) -> MappingChanges {
    MappingChanges {
        add: now.difference(before).cloned().collect(),
        remove: before.difference(now).cloned().collect(),
    }
}

/// A username for an account created at first login: the preferred name, else the email's
/// local part, else the subject, cut down to the username alphabet; `n > 1` adds `-n` to pick
/// another when the name is taken.
pub fn derive_username(
    preferred: Option<&str>,
    email: Option<&str>,
    subject: &str,
    n: u32,
) -> String {
    let base = [
        preferred,
        email.and_then(|e| e.split_once('@').map(|(l, _)| l)),
        Some(subject),
    ]
    .into_iter()
    .flatten()
    .map(sanitize_username)
    .find(|s| !s.is_empty())
    .unwrap_or_else(|| "user".to_string());
    let suffix = if n > 1 {
        format!("-{n}")
    } else {
        String::new()
    };
    let keep = names::MAX_USERNAME - suffix.len();
    let mut name: String = base.chars().take(keep).collect();
    name.push_str(&suffix);
    name
}

fn sanitize_username(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_start_matches(['.', '_', '-'])
        .trim_end_matches('-')
        .to_string()
}

/// Nested group resolution of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NestedGroups {
    /// Group memberships followed through groups of groups (any LDAP server).
    #[default]
    MemberOf,
    /// Active Directory's `LDAP_MATCHING_RULE_IN_CHAIN` in one search.
    AdInChain,
}

/// How Enclave reaches an OpenID Connect provider (secrets are kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL, exactly as the provider's discovery document names it.
    pub issuer: String,
    /// Enclave's client id at the provider.
    pub client_id: String,
    /// Scopes requested (`openid` is always included).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Accepted ID token signature algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim holding the email address.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// Claim holding the display name.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Claim holding the groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Also ask the userinfo endpoint for claims.
    #[serde(default)]
    pub use_userinfo: bool,
    /// The provider is on an internal network: private and loopback addresses and plain
    /// `http` are allowed.
    #[serde(default)]
    pub internal: bool,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256"].map(String::from).to_vec()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}

/// Signature algorithms an OIDC source may allow (`none` and the HMAC ones never: an HMAC
/// key is the client secret, so anyone holding it could mint tokens).
pub const OIDC_ALGORITHMS: [&str; 8] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

impl OidcSettings {
    /// Checks URLs, names and algorithms.
    pub fn validate(&self) -> Result<()> {
        url_setting("oidc.issuer", &self.issuer, self.internal)?;
        setting("oidc.client_id", &self.client_id, true)?;
        if self.scopes.len() > 20 {
            return Err(Error::invalid("oidc.scopes", "at most 20 scopes"));
        }
        for s in &self.scopes {
            let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                return Err(Error::invalid(
                    "oidc.scopes",
                    "scopes are short words without spaces",
                ));
            }
        }
        if self.algorithms.is_empty()
            || self
                .algorithms
                .iter()
                .any(|a| !OIDC_ALGORITHMS.contains(&a.as_str()))
        {
            return Err(Error::invalid(
                "oidc.algorithms",
                format!(
                    "algorithms must be a non-empty list of {}",
                    OIDC_ALGORITHMS.join(", ")
                ),
            ));
        }
        for (f, v) in [
            ("oidc.email_claim", &self.email_claim),
            ("oidc.name_claim", &self.name_claim),
            ("oidc.groups_claim", &self.groups_claim),
        ] {
            setting(f, v, true)?;
        }
        Ok(())
    }
}

/// How Enclave reaches an LDAP or Active Directory server (the bind password is kept apart,
/// sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldaps://host:636` or `ldap://host:389` (the latter with `starttls`, or `allow_plain`).
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Allow `ldap://` without TLS (passwords cross the network in clear).
    #[serde(default)]
    pub allow_plain: bool,
    /// A CA certificate (PEM) to trust for this directory, instead of the platform's roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The service account's DN.
    pub bind_dn: String,
    /// Where users are searched.
    pub user_base: String,
    /// The user search filter; `{username}` is replaced by the escaped login name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Where groups are searched.
    pub group_base: String,
    /// Filter selecting group entries.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Attribute holding a group's name.
    #[serde(default = "default_cn")]
    pub group_name_attr: String,
    /// Attribute on users listing their groups (`memberOf`); empty searches groups by member.
    #[serde(default = "default_member_of")]
    pub member_of_attr: String,
    /// Attribute holding the login name.
    #[serde(default = "default_username_attr")]
    pub username_attr: String,
    /// Attribute holding the email.
    #[serde(default = "default_email_attr")]
    pub email_attr: String,
    /// Attribute holding the display name.
    #[serde(default = "default_cn")]
    pub name_attr: String,
    /// How nested groups are resolved.
    #[serde(default)]
    pub nested_groups: NestedGroups,
    /// A filter matching disabled accounts, e.g. AD's
    /// `(userAccountControl:1.2.840.113556.1.4.803:=2)`.
    #[serde(default)]
    pub disabled_filter: Option<String>,
    /// How often accounts from this directory are checked (seconds).
    #[serde(default = "default_sync_interval")]
    pub sync_interval_secs: u64,
}

fn default_user_filter() -> String {
    "(&(objectClass=person)(uid={username}))".into()
}
fn default_group_filter() -> String {
    "(objectClass=groupOfNames)".into()
}
fn default_member_of() -> String {
    "memberOf".into()
}
fn default_username_attr() -> String {
    "uid".into()
}
fn default_email_attr() -> String {
    "mail".into()
}
fn default_cn() -> String {
    "cn".into()
}
fn default_sync_interval() -> u64 {
    300
}

impl LdapSettings {
    /// Checks URL scheme against the TLS settings, DNs, filter template and interval.
    pub fn validate(&self) -> Result<()> {
        setting("ldap.url", &self.url, true)?;
        let plain = self.url.starts_with("ldap://");
        if !plain && !self.url.starts_with("ldaps://") {
            return Err(Error::invalid(
                "ldap.url",
                "the URL must start with ldaps:// (or ldap:// with starttls)",
            ));
        }
        if !plain && self.starttls {
            return Err(Error::invalid(
                "ldap.starttls",
                "starttls applies to ldap:// URLs; ldaps:// is TLS already",
            ));
        }
        if plain && !self.starttls && !self.allow_plain {
            return Err(Error::invalid(
                "ldap.url",
                "ldap:// without starttls sends passwords in clear: use ldaps://, set starttls, or set allow_plain if you accept that",
            ));
        }
        for (f, v) in [
            ("ldap.bind_dn", &self.bind_dn),
            ("ldap.user_base", &self.user_base),
            ("ldap.group_base", &self.group_base),
            ("ldap.group_filter", &self.group_filter),
            ("ldap.group_name_attr", &self.group_name_attr),
            ("ldap.username_attr", &self.username_attr),
            ("ldap.email_attr", &self.email_attr),
            ("ldap.name_attr", &self.name_attr),
        ] {
            setting(f, v, true)?;
        }
        setting("ldap.user_filter", &self.user_filter, true)?;
        if !self.user_filter.contains("{username}")
            || !self.user_filter.starts_with('(')
            || !self.user_filter.ends_with(')')
        {
            return Err(Error::invalid(
                "ldap.user_filter",
                "the user filter must be a parenthesized LDAP filter containing {username}",
            ));
        }
        if let Some(d) = &self.disabled_filter {
            setting("ldap.disabled_filter", d, true)?;
            if !d.starts_with('(') || !d.ends_with(')') {
                return Err(Error::invalid(
                    "ldap.disabled_filter",
                    "the disabled filter must be a parenthesized LDAP filter",
                ));
            }
        }
        if let Some(pem) = &self.ca_pem {
            if pem.len() > 64 * 1024 || !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::invalid(
                    "ldap.ca_pem",
                    "ca_pem must be a PEM certificate (at most 64 KiB)",
                ));
            }
        }
        let (lo, hi) = SYNC_INTERVAL_BOUNDS;
        if !(lo..=hi).contains(&self.sync_interval_secs) {
            return Err(Error::invalid(
                "ldap.sync_interval_secs",
                format!("the sync interval must be between {lo} and {hi} seconds"),
            ));
        }
        Ok(())
    }
}

/// An identity source as configured (secrets excluded: only whether they are set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySource {
    /// Opaque id.
    pub id: String,
    /// Short name, used in URLs (`/auth/oidc/{name}/…`, `/scim/v2/{name}`).
    pub name: String,
    /// Protocol.
    pub kind: SourceKind,
    /// Name on the login button.
    pub display_name: String,
    /// Whether logins through it are accepted.
    pub enabled: bool,
    /// OIDC settings (kind `oidc`).
    pub oidc: Option<OidcSettings>,
    /// LDAP settings (kind `ldap`).
    pub ldap: Option<LdapSettings>,
    /// Who is admitted.
    pub admission: Admission,
    /// Group mappings.
    pub mappings: Vec<GroupMapping>,
    /// Whether the OIDC client secret or LDAP bind password is set.
    pub secret_set: bool,
    /// Whether a SCIM token is set.
    pub scim_token_set: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last completed directory sync.
    pub last_sync_at: Option<Timestamp>,
}

impl IdentitySource {
    /// Checks the whole source: name, display name, the settings its kind needs (and no
    /// other), admission and mappings.
    pub fn validate(&self) -> Result<()> {
        names::slug("name", &self.name)?;
        names::text("display_name", &self.display_name, true)?;
        match (self.kind, &self.oidc, &self.ldap) {
            (SourceKind::Oidc, Some(o), None) => o.validate()?,
            (SourceKind::Ldap, None, Some(l)) => l.validate()?,
            (k, _, _) => {
                return Err(Error::invalid(
                    k.as_str(),
                    format!(
                        "a source of kind '{}' needs exactly its '{}' settings",
                        k.as_str(),
                        k.as_str()
                    ),
                ))
            }
        }
        self.admission.validate()?;
        if self.mappings.len() > MAX_MAPPINGS {
            return Err(Error::invalid(
                "mappings",
                format!("at most {MAX_MAPPINGS} mappings"),
            ));
        }
        for m in &self.mappings {
            m.validate()?;
        }
        Ok(())
    }
}

/// What a source says about a person after authenticating them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalIdentity {
    /// Stable id at the source (OIDC `sub`, LDAP DN's login name).
    pub subject: String,
    /// Preferred login name, if the source has one.
    pub preferred_username: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Whether the source verified the email (`None` when it does not say).
    pub email_verified: Option<bool>,
    /// Display name.
    pub name: Option<String>,
    /// Group names at the source.
    pub groups: Vec<String>,
    /// Authentication methods the source reports (OIDC `amr`).
    pub amr: Vec<String>,
    /// Authentication context class (OIDC `acr`).
    pub acr: Option<String>,
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn setting(field: &str, v: &str, required: bool) -> Result<()> {
    if required && v.trim().is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    if v.chars().count() > MAX_SETTING_CHARS || v.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_SETTING_CHARS} characters, without control characters"),
        ));
    }
    Ok(())
}

fn url_setting(field: &str, v: &str, internal: bool) -> Result<()> {
    setting(field, v, true)?;
    let ok = v.starts_with("https://") || (internal && v.starts_with("http://"));
    if !ok || v.contains(char::is_whitespace) || v.contains('#') {
        return Err(Error::invalid(
            field,
            if internal {
                format!("{field} must be an http:// or https:// URL")
            } else {
                format!("{field} must be an https:// URL (plain http only for a provider marked internal)")
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn groups(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn admission_rules() {
        let all = Admission::default();
        assert!(all.admits(None, None, &[]).is_ok());
        let dom = Admission {
            mode: AdmissionMode::Domains,
            domains: groups(&["corp.example"]),
            groups: vec![],
        };
        assert!(dom.admits(Some("a@Corp.Example"), Some(true), &[]).is_ok());
        assert!(dom.admits(Some("a@corp.example"), None, &[]).is_ok());
        assert!(dom
            .admits(Some("a@corp.example"), Some(false), &[])
            .is_err());
        assert!(dom.admits(Some("a@sub.corp.example"), None, &[]).is_err());
        assert!(dom.admits(Some("a@other.example"), None, &[]).is_err());
        assert!(dom.admits(Some("a@evil.example@corp"), None, &[]).is_err());
        assert!(dom.admits(None, None, &[]).is_err());
        let grp = Admission {
            mode: AdmissionMode::Groups,
            domains: vec![],
            groups: groups(&["Data-Scientists", "staff"]),
        };
        assert!(grp
            .admits(None, None, &groups(&["data-scientists"]))
            .is_ok());
        assert!(grp.admits(None, None, &groups(&["contractors"])).is_err());
        assert!(Admission {
            mode: AdmissionMode::Groups,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(Admission {
            mode: AdmissionMode::Domains,
            domains: groups(&["not a domain"]),
            groups: vec![],
        }
        .validate()
        .is_err());
    }

    #[test]
    fn mappings_plan_and_changes() {
        let m = vec![
            GroupMapping {
                idp_group: "data-scientists".into(),
                group: Some("ds".into()),
                platform_role: None,
                project: Some("fraud".into()),
                project_role: Some(ProjectRole::Member),
            },
            GroupMapping {
                idp_group: "fraud-leads".into(),
                group: None,
                platform_role: None,
                project: Some("fraud".into()),
                project_role: Some(ProjectRole::Owner),
            },
            GroupMapping {
                idp_group: "secops".into(),
                group: None,
                platform_role: Some("security_auditor".into()),
                project: None,
                project_role: None,
            },
        ];
        for x in &m {
            x.validate().unwrap();
        }
        let p = plan_mappings(&m, &groups(&["Data-Scientists", "fraud-leads"]));
        assert_eq!(p.projects.get("fraud"), Some(&ProjectRole::Owner));
        assert!(p.groups.contains("ds"));
        assert!(p.platform_roles.is_empty());
        let before = p.items();
        let after = plan_mappings(&m, &groups(&["secops"])).items();
        let c = mapping_changes(&before, &after);
        assert_eq!(
            c.add,
            vec![Managed::PlatformRole("security_auditor".into())]
        );
        assert_eq!(c.remove.len(), 2);
        let bad = GroupMapping {
            idp_group: "x".into(),
            group: None,
            platform_role: Some("root".into()),
            project: None,
            project_role: None,
        };
        assert!(bad.validate().is_err());
        let nothing = GroupMapping {
            platform_role: None,
            ..bad
        };
        assert!(nothing.validate().is_err());
    }

    #[test]
    fn usernames_for_new_accounts() {
        assert_eq!(
            derive_username(Some("Alice.Smith"), None, "s", 1),
            "alice.smith"
        );
        assert_eq!(
            derive_username(None, Some("Bob Jones@x.example"), "s", 1),
            "bob-jones"
        );
        assert_eq!(derive_username(None, None, "0a1b-sub", 2), "0a1b-sub-2");
        assert_eq!(derive_username(Some("***"), None, "!!", 1), "user");
        let long = "a".repeat(200);
        let n = derive_username(Some(&long), None, "s", 12);
        assert!(n.len() <= names::MAX_USERNAME && n.ends_with("-12"));
        for n in [
            derive_username(Some("_x"), None, "s", 1),
            derive_username(None, Some("ÄÖ.ü@x"), "s", 1),
        ] {
            names::username("u", &n).unwrap();
        }
    }

    #[test]
    fn ldap_settings_refuse_clear_text_unless_asked() {
        let mut l = LdapSettings {
            url: "ldap://dc.corp.example".into(),
            starttls: false,
            allow_plain: false,
            ca_pem: None,
            bind_dn: "cn=svc".into(),
            user_base: "ou=people".into(),
            user_filter: default_user_filter(),
            group_base: "ou=groups".into(),
            group_filter: default_group_filter(),
            group_name_attr: "cn".into(),
            member_of_attr: "memberOf".into(),
            username_attr: "uid".into(),
            email_attr: "mail".into(),
            name_attr: "cn".into(),
            nested_groups: NestedGroups::MemberOf,
            disabled_filter: None,
            sync_interval_secs: 300,
        };
        assert!(l.validate().is_err());
        l.starttls = true;
        l.validate().unwrap();
        l.user_filter = "(uid=*)".into();
        assert!(l.validate().is_err());
    }

    #[test]
    fn oidc_settings_refuse_weak_algorithms_and_plain_http() {
        let mut o = OidcSettings {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "enclave".into(),
            scopes: default_scopes(),
            algorithms: default_algorithms(),
            email_claim: "email".into(),
            name_claim: "name".into(),
            groups_claim: "groups".into(),
            use_userinfo: false,
            internal: false,
        };
        assert!(o.validate().is_err());
        o.internal = true;
        o.validate().unwrap();
        o.algorithms = vec!["HS256".into()];
        assert!(o.validate().is_err());
        o.algorithms = vec!["none".into()];
        assert!(o.validate().is_err());
    }
}
