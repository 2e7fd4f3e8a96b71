//! Reading the audit trail: search, export, verification, the public key, and "who accessed my
//! work". Writing happens only through the audit chokepoint ([`App::commit`], [`App::audit`]).
//!
//! Who sees what: whoever may `audit.search` the whole trail (security auditors, platform
//! admins) sees every record; whoever may search a project's part (its owners) sees that
//! project's records; everyone else sees the records of their own actions.

use crate::chokepoint::Caller;
use crate::{detail, App};
use enclave_audit::{Checkpoint, Failure, PublicKey, Summary};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::{names, Error, Result};
use enclave_policy::Resource;
use enclave_store::{AuditEntry, AuditFilter, AuditOrder, AuditSearchPage};
use std::collections::{BTreeMap, HashSet};

/// Largest page of a search.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// Which part of the trail a search covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// Every record.
    All,
    /// One project's records.
    Project,
    /// The caller's own actions.
    Own,
}

impl AuditScope {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditScope::All => "all",
            AuditScope::Project => "project",
            AuditScope::Own => "own",
        }
    }
}

/// The installation's audit signing key and latest checkpoint, to hand to an outside party.
#[derive(Debug, Clone)]
pub struct AuditKey {
    /// The Ed25519 public key.
    pub public_key: PublicKey,
    /// The newest signed checkpoint, if any.
    pub latest_checkpoint: Option<Checkpoint>,
}

impl App {
    fn audit_public_key(&self) -> Result<PublicKey> {
        self.store
            .audit_options()
            .signer
            .as_ref()
            .map(|s| s.public_key())
            .ok_or_else(|| Error::unavailable("the audit signing key"))
    }

    /// Searches the trail, narrowed to what the caller may see (see the module docs).
    pub async fn search_audit(
        &self,
        caller: &Caller,
        mut filter: AuditFilter,
        order: AuditOrder,
        after: Option<u64>,
        limit: u32,
    ) -> Result<(AuditSearchPage, AuditScope)> {
        if let Some(p) = &filter.project {
            names::slug("project", p)?;
        }
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        let all = self
            .decide(
                caller,
                Action::AuditSearch,
                &Resource::AuditTrail { project: None },
                None,
            )
            .await
            .allowed;
        let scope = if all {
            AuditScope::All
        } else {
            let project = match &filter.project {
                Some(p) => {
                    self.decide(
                        caller,
                        Action::AuditSearch,
                        &Resource::AuditTrail {
                            project: Some(p.clone()),
                        },
                        None,
                    )
                    .await
                    .allowed
                }
                None => false,
            };
            if project {
                AuditScope::Project
            } else {
                // One's own actions: what the account itself did.
                self.authorize_self(caller, Action::SelfRead).await?;
                filter.actor = Some(caller.principal.username.clone());
                AuditScope::Own
            }
        };
        let page = self
            .store
            .search_audit(&filter, order, after, limit)
            .await?;
        Ok((page, scope))
    }

    /// Exports the whole retained trail as JSON Lines that anyone holding the public key can
    /// verify (`from`: start at that checkpoint). The export is itself audited.
    pub async fn export_audit(&self, caller: &Caller, from: Option<u64>) -> Result<Vec<u8>> {
        self.authorize(
            caller,
            Action::AuditExport,
            &Resource::AuditTrail { project: None },
            "platform:audit",
            false,
        )
        .await?;
        let mut out = Vec::new();
        let records = self.store.export_audit(from, self.now(), &mut out).await?;
        let rec = caller.record(
            self,
            Action::AuditExport.as_str(),
            "platform:audit".into(),
            None,
            Outcome::Success,
            detail!("records" => records, "from" => from),
        );
        self.audit(rec).await?;
        Ok(out)
    }

    /// Verifies the stored trail: chain and checkpoint signatures, from genesis (or the
    /// retention anchor) or from the checkpoint at `from`.
    pub async fn verify_audit(
        &self,
        caller: &Caller,
        from: Option<u64>,
    ) -> Result<std::result::Result<Summary, Failure>> {
        self.authorize(
            caller,
            Action::AuditVerify,
            &Resource::AuditTrail { project: None },
            "platform:audit",
            false,
        )
        .await?;
        let key = self.audit_public_key()?;
        Ok(self.store.verify_audit(&key, from).await?)
    }

    /// The public key and the latest checkpoint, for an outside party to keep.
    pub async fn audit_key(&self, caller: &Caller) -> Result<AuditKey> {
        self.authorize(
            caller,
            Action::AuditVerify,
            &Resource::AuditTrail { project: None },
            "platform:audit",
            false,
        )
        .await?;
        // Sign the current head first, so the checkpoint handed out covers everything so far.
        let latest = match self.store.checkpoint_now(self.now()).await {
            Ok(cp) => cp,
            Err(enclave_store::StoreError::NoSigner) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(AuditKey {
            public_key: self.audit_public_key()?,
            latest_checkpoint: latest,
        })
    }

    /// "Who accessed my work": records in the caller's projects of actions by people who are
    /// not members there (platform admins, support and admin grants), and opens of the
    /// caller's notebook servers by anyone else, newest first.
    pub async fn access_to_my_work(&self, caller: &Caller, limit: u32) -> Result<Vec<AuditEntry>> {
        self.authorize_self(caller, Action::SelfRead).await?;
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        let mut projects = BTreeMap::new();
        let mut cursor = None;
        loop {
            let req = enclave_core::model::PageRequest {
                limit: 200,
                after: cursor,
            };
            let page = self
                .store
                .list_projects(&req, &caller.principal.user_id, true)
                .await?;
            for (p, _) in page.items {
                projects.insert(p.name.clone(), p.id);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let mut found = Vec::new();
        for (name, id) in &projects {
            let members: HashSet<String> = self
                .store
                .all_project_members(id)
                .await?
                .into_iter()
                .collect();
            let filter = AuditFilter {
                project: Some(name.clone()),
                ..AuditFilter::default()
            };
            let mut after = None;
            // Walk the project's records newest first until enough outside access is found.
            for _ in 0..20 {
                let page = self
                    .store
                    .search_audit(&filter, AuditOrder::NewestFirst, after, MAX_AUDIT_PAGE)
                    .await?;
                let me = &caller.principal.username;
                found.extend(page.items.into_iter().filter(|e| {
                    let outsider = !members.contains(&e.record.actor)
                        && e.record.actor != "system"
                        && e.record.actor != "anonymous";
                    // A member (an owner, say) opening my notebook server is shown too.
                    let opened_mine = e.record.action == "notebook.open"
                        && &e.record.actor != me
                        && e.record.detail.get("owner").and_then(|o| o.as_str())
                            == Some(me.as_str());
                    outsider || opened_mine
                }));
                match page.next {
                    Some(n) if found.len() < limit as usize => after = Some(n),
                    _ => break,
                }
            }
        }
        found.sort_by_key(|e| std::cmp::Reverse(e.seq));
        found.truncate(limit as usize);
        Ok(found)
    }

    /// Housekeeping for the trail: records the windows of token use that have ended, signs a
    /// checkpoint for the head when one is due by time, and prunes records older than
    /// `retention` (if set) up to the newest checkpoint before that age, recording the pruning.
    /// Run periodically by the server.
    pub async fn audit_housekeeping(&self, retention: Option<std::time::Duration>) -> Result<()> {
        self.flush_token_use(false).await?;
        let now = self.now();
        match self.store.checkpoint_now(now).await {
            Ok(_) | Err(enclave_store::StoreError::NoSigner) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(retention) = retention else {
            return Ok(());
        };
        let cutoff = now.minus(retention);
        // The newest checkpoint signed before the cutoff becomes the trust anchor.
        let mut anchor = None;
        let mut after = 0;
        loop {
            let cps = self.store.audit_checkpoints(after, 500).await?;
            let Some(last) = cps.last() else { break };
            after = last.seq;
            let done = cps.len() < 500 || last.at > cutoff;
            anchor = cps.into_iter().rev().find(|cp| cp.at <= cutoff).or(anchor);
            if done {
                break;
            }
        }
        if let Some(cp) = anchor {
            let first = self.store.records_after(0, 1).await?;
            if first.first().is_some_and(|e| e.seq <= cp.seq) {
                let meta = crate::RequestMeta::local();
                let rec = meta.record(
                    now,
                    "system",
                    "retention",
                    enclave_store::PRUNE_ACTION,
                    "platform:audit".into(),
                );
                let deleted = self.store.prune_audit_through(cp.seq, &rec).await?;
                tracing::info!(through = cp.seq, deleted, "audit trail pruned by retention");
            }
        }
        Ok(())
    }
}
