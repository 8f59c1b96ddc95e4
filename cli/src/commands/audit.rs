//! `audit`: the relay's audit log as this account sees it — tree heads checked against the pinned
//! log key and witnesses, one line per entry, release requests grouped with their trustees.

use std::path::Path;

use anyhow::{Result, bail};

use super::{Relay, connect, conv_id};
use crate::print::Output;

/// `audit [--conversation ID] [--verify]`: fails (with the report) unless every entry verified.
pub(super) async fn audit(
    home: &Path,
    relay: &Relay,
    conversation: Option<&str>,
    verify: bool,
) -> Result<Output> {
    let id = conversation.map(conv_id).transpose()?;
    let mut c = connect(home, relay, false).await?;
    let id = match id {
        Some(i) => Some(i.resolve_synced(&mut c).await?),
        None => None,
    };
    c.sync_all().await?;
    let r = c.audit(id, verify).await?;
    c.close().await;
    let mut text = head_text(&r);
    text.push_str(&audit_text(&r));
    if !r.verified() {
        bail!(
            "{text}the audit log failed verification: entries above are not genuine, \
             not proven, or contradict each other"
        );
    }
    let mut json = serde_json::to_value(&r)?;
    crate::json_hex::ids_in_hex(&mut json);
    Ok(Output::new(text.trim_end().to_owned(), json))
}

/// The report's first lines: the head checked, what was withheld, passed over unread (a later
/// version's kinds, PROTOCOL.md §12.3) or does not make up the head, and the witnesses.
fn head_text(r: &sealdesk_client::escrow::AuditReport) -> String {
    let mut text = format!(
        "audit log: {} entries (root {}), signed by the relay's pinned log key; {}\n",
        r.size,
        r.root,
        match r.consistent_with_pinned {
            Some(true) => "consistent with the tree head you saw last time",
            _ => "tree head pinned now (first check)",
        }
    );
    if r.withheld > 0 {
        text.push_str(&format!(
            "{} entries withheld from you (about others' conversations or orgs): served as leaf \
             hashes only, counted in the tree head\n",
            r.withheld
        ));
    }
    if !r.leaves_make_head {
        text.push_str(
            "THE ENTRIES SERVED DO NOT MAKE UP THE TREE HEAD: the relay dropped, added or \
             changed entries of the listing\n",
        );
    }
    if !r.unreadable.is_empty() {
        text.push_str(&sealdesk_client::notice::unreadable_summary(&r.unreadable));
        text.push('\n');
    }
    for (org, n) in &r.witnessed {
        text.push_str(&format!(
            "tree head witnessed by {} of {org} (fresh cosignatures)\n",
            crate::print::counted(*n as u64, "trustee", "trustees")
        ));
    }
    text
}

/// The audit report's lines: one line per release request (its trustees' entries listed under
/// it, each with its own checks), every other entry on a line of its own.
fn audit_text(r: &sealdesk_client::escrow::AuditReport) -> String {
    let proof = |included: Option<bool>| match included {
        Some(true) => "  [inclusion proven]",
        Some(false) => "  [INCLUSION PROOF FAILED]",
        None => "",
    };
    let group_of = |index: u64| {
        r.releases
            .iter()
            .position(|g| g.notice.all_indexes().contains(&index))
    };
    let mut shown = std::collections::BTreeSet::new();
    let mut text = String::new();
    for e in &r.entries {
        let Some(g) = group_of(e.index) else {
            text.push_str(&format!("#{} {}{}\n", e.index, e.text, proof(e.included)));
            continue;
        };
        if !shown.insert(g) {
            continue;
        }
        let Some(group) = r.releases.get(g) else {
            continue;
        };
        text.push_str(&format!("{}\n", group.text));
        let included = |i: u64| {
            r.entries
                .iter()
                .find(|l| l.index == i)
                .and_then(|l| l.included)
        };
        for (name, i) in group.notice.trustees.iter().zip(&group.notice.indexes) {
            text.push_str(&format!(
                "    #{i} released by {name}: signed by a trustee{}\n",
                proof(included(*i))
            ));
        }
        for v in &group.notice.contradicting {
            for (name, i) in v.trustees.iter().zip(&v.indexes) {
                text.push_str(&format!(
                    "    #{i} by {name}: CONTRADICTS other entries of this release (says {}; \
                     not counted with them){}\n",
                    v.epochs,
                    proof(included(*i))
                ));
            }
        }
        for i in &group.notice.failed {
            text.push_str(&format!(
                "    #{i} NOT GENUINE: not signed by a trustee of the org, or not proven{}\n",
                proof(included(*i))
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sealdesk_client::escrow::AuditReport;

    use super::head_text;

    /// Entries of a kind this version cannot read get their line, with their indexes.
    #[test]
    fn entries_of_a_later_kind_are_said_with_their_indexes() {
        let mut r = AuditReport {
            size: 7,
            root: "00".into(),
            consistent_with_pinned: Some(true),
            witnessed: Default::default(),
            withheld: 0,
            leaves_make_head: true,
            unreadable: Vec::new(),
            entries: Vec::new(),
            releases: Vec::new(),
        };
        assert!(!head_text(&r).contains("cannot read"));
        r.unreadable = vec![4];
        assert!(
            head_text(&r).contains(
                "\n1 entry of a kind this version cannot read at index 4 — update sealdesk\n"
            ),
            "{}",
            head_text(&r)
        );
        r.unreadable = vec![4, 6];
        assert!(
            head_text(&r)
                .contains("2 entries of a kind this version cannot read at indexes 4, 6 — update")
        );
    }
}
