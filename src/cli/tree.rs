//! `pnc-pki tree`: the hierarchy as an indented tree, the view an operator wants first.

use std::collections::BTreeMap;

use crate::model::CaRecord;
use crate::ra::{Ra, RaError};

fn left(not_after: i64, now: i64) -> String {
    let d = (not_after - now) / 86_400;
    if not_after <= now {
        "EXPIRED".into()
    } else if d >= 730 {
        format!("{}y left", d / 365)
    } else {
        format!("{d}d left")
    }
}

/// The tree, one CA per line.
pub async fn render(ra: &Ra) -> Result<String, RaError> {
    let cas = ra.cas().await?;
    let counts: BTreeMap<String, (i64, i64)> = ra
        .counts_by_issuer()
        .await?
        .into_iter()
        .map(|(i, v, r)| (i, (v, r)))
        .collect();
    let now = ra.now();
    let mut children: BTreeMap<Option<String>, Vec<&CaRecord>> = BTreeMap::new();
    for c in &cas {
        children.entry(c.parent_id.clone()).or_default().push(c);
    }
    let mut out = String::new();
    #[allow(clippy::too_many_arguments)]
    fn walk(
        out: &mut String,
        node: &CaRecord,
        prefix: &str,
        last: bool,
        root: bool,
        children: &BTreeMap<Option<String>, Vec<&CaRecord>>,
        counts: &BTreeMap<String, (i64, i64)>,
        now: i64,
    ) {
        let (valid, revoked) = counts.get(&node.id).copied().unwrap_or((0, 0));
        // A root's own certificate is counted under itself; don't report it as "issued".
        let valid = if root { valid - 1 } else { valid };
        let branch = if root {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        out.push_str(&format!(
            "{prefix}{branch}{}  [{}]  {}  {}  issued: {} valid, {} revoked\n",
            node.id,
            node.key_alg.name(),
            node.subject,
            left(node.not_after, now),
            valid.max(0),
            revoked
        ));
        let kids = children
            .get(&Some(node.id.clone()))
            .cloned()
            .unwrap_or_default();
        let next_prefix = if root {
            prefix.to_string()
        } else if last {
            format!("{prefix}    ")
        } else {
            format!("{prefix}│   ")
        };
        for (i, k) in kids.iter().enumerate() {
            walk(
                out,
                k,
                &next_prefix,
                i + 1 == kids.len(),
                false,
                children,
                counts,
                now,
            );
        }
    }
    let roots = children.get(&None).cloned().unwrap_or_default();
    if roots.is_empty() {
        out.push_str("no CAs yet: run `pnc-pki init`\n");
    }
    for r in roots {
        walk(&mut out, r, "", true, true, &children, &counts, now);
    }
    Ok(out)
}
