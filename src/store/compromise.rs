//! Sub-CA compromise response (`pnc-pki ca compromise`): the stopped key generations, the bulk
//! revocation of what they signed, and the lists of what depends on them. The steps themselves
//! are in `crate::ca::compromise`.
//!
//! A stopped key generation is a row of `ca_compromises`; a trigger on `certificates` (migration
//! 0017) refuses to record anything it signed, in the inserting transaction, so a replica that
//! has not reloaded its keys fails its issuance instead of delivering it
//! ([`StoreError::KeyStopped`]). Every issuance appends to the audit chain before it inserts, and
//! the stop appends too: the head row's lock orders them, so an issuance either committed
//! before the stop (and is then revoked with the rest) or sees the stop and is refused.

use sqlx::Row;

use super::{Store, StoreError, audit, dispatch};
use crate::model::{AuditEntry, AuditEvent, RevocationReason};

/// A stopped (compromised) CA key generation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompromiseRecord {
    /// The CA.
    pub ca_id: String,
    /// The compromised key generation.
    pub generation: i64,
    /// Why its own certificate is revoked at its parent.
    pub reason: String,
    /// The CA the command was run for (this one, or one above it).
    pub origin: String,
    /// Who ran it.
    pub actor: String,
    /// When the key was stopped, unix seconds.
    pub started_at: i64,
    /// When every step was done, unix seconds.
    pub finished_at: Option<i64>,
}

/// A certificate a compromise revoked whose holder must enroll again (an EVSE, a charging
/// station, a CSMS…): what a CPO's CSMS needs to trigger `SignCertificate`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReenrollEntry {
    /// Tenant (CPO id, …), empty when none.
    pub tenant: String,
    /// Profile.
    pub profile: String,
    /// Issuing CA.
    pub issuer_id: String,
    /// Serial, hex.
    pub serial_hex: String,
    /// Subject.
    pub subject: String,
    /// EVSE ID, when the certificate carries one.
    pub evse_id: Option<String>,
    /// Expiry it had, unix seconds.
    pub not_after: i64,
}

/// A contract whose pooled vehicle needs new contract data.
#[derive(Debug, Clone)]
pub struct ContractToRegenerate {
    /// Contract id.
    pub contract_id: String,
    /// EMAID.
    pub emaid: String,
    /// PCID.
    pub pcid: String,
    /// `xsdMsgDefNamespace` of the pooled provisioning certificate.
    pub namespace: String,
}

const COMPROMISE_COLUMNS: &str =
    "ca_id, generation, reason, origin, actor, started_at, finished_at";

macro_rules! compromise_from_row {
    ($r:expr) => {{
        let r = $r;
        CompromiseRecord {
            ca_id: r.try_get("ca_id")?,
            generation: r.try_get("generation")?,
            reason: r.try_get("reason")?,
            origin: r.try_get("origin")?,
            actor: r.try_get("actor")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
        }
    }};
}

/// `(contract_id, issuer_id, issuer_generation, status)` of each of `$rows`, as a
/// `Vec<(String, String, i64, String)>`; `?`s a column that cannot be read.
macro_rules! certs_of_rows {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|r| -> Result<(String, String, i64, String), sqlx::Error> {
                Ok((
                    r.try_get("contract_id")?,
                    r.try_get("issuer_id")?,
                    r.try_get("issuer_generation")?,
                    r.try_get("status")?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
}

/// Certificates signed by a stopped key of compromise `origin` (the `c` alias). The same rule
/// is applied in memory by `Store::compromise_contracts_due`: change both.
const OF_STOPPED_KEYS: &str = "EXISTS (SELECT 1 FROM ca_compromises s WHERE s.origin = $1 \
     AND s.ca_id = c.issuer_id AND s.generation = c.issuer_generation)";

/// Not a CA certificate: no CA row, current or retired, has its serial under that issuer.
const NOT_A_CA: &str = "NOT EXISTS (SELECT 1 FROM cas a WHERE a.parent_id = c.issuer_id \
     AND a.serial_hex = c.serial_hex) AND NOT EXISTS (SELECT 1 FROM ca_retired_keys r \
     WHERE r.parent_id = c.issuer_id AND r.serial_hex = c.serial_hex)";

/// Not the CA's own certificate. A CA signed by an issuer this service does not hold has its
/// certificate recorded under itself (`issuer_id` = its own id): that key did not sign it, and
/// only its external issuer can revoke it (the compromise report says what to send), so a
/// compromise of that key must not list it as something the key signed.
const NOT_OWN_CERT: &str = "NOT EXISTS (SELECT 1 FROM cas o WHERE o.id = c.issuer_id \
     AND o.serial_hex = c.serial_hex) AND NOT EXISTS (SELECT 1 FROM ca_retired_keys o \
     WHERE o.id = c.issuer_id AND o.serial_hex = c.serial_hex)";

impl Store {
    /// Stop the key generations `keys` (CA id, generation) for compromise `origin`, with the
    /// audit entry `event`, in one transaction. Generations stopped before keep their row (a
    /// rerun); when none is new nothing is written. Returns how many were stopped now.
    pub async fn compromise_stop(
        &self,
        keys: &[(String, i64)],
        reason: RevocationReason,
        origin: &str,
        event: &AuditEvent,
    ) -> Result<usize, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _entry = audit::append_in_tx!(tx, event, ts);
            let mut added = 0usize;
            for (ca, generation) in keys {
                let r = sqlx::query(
                    "INSERT INTO ca_compromises (ca_id, generation, reason, origin, actor, started_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ca_id, generation) DO NOTHING",
                )
                .bind(ca)
                .bind(generation)
                .bind(reason.name())
                .bind(origin)
                .bind(&event.actor)
                .bind(ts)
                .execute(&mut *tx)
                .await?;
                added += usize::try_from(r.rows_affected()).unwrap_or(0);
            }
            if added > 0 {
                tx.commit().await?;
            }
            Ok(added)
        })
    }

    /// The key generations stopped for compromise `origin` that is not finished, the origin's
    /// own first; empty when none is under way.
    pub async fn compromise_unfinished(
        &self,
        origin: &str,
    ) -> Result<Vec<CompromiseRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COMPROMISE_COLUMNS} FROM ca_compromises WHERE origin = $1 \
                 AND finished_at IS NULL ORDER BY CASE WHEN ca_id = $1 THEN 0 ELSE 1 END, started_at, ca_id"
            )))
            .bind(origin)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(compromise_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Every stopped key generation of CA `ca_id`, newest first.
    pub async fn compromises_of(&self, ca_id: &str) -> Result<Vec<CompromiseRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COMPROMISE_COLUMNS} FROM ca_compromises WHERE ca_id = $1 \
                 ORDER BY generation DESC"
            )))
            .bind(ca_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(compromise_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Mark compromise `origin` finished, with its closing audit entry.
    pub async fn compromise_finish(
        &self,
        origin: &str,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let entry = audit::append_in_tx!(tx, event, ts);
            sqlx::query(
                "UPDATE ca_compromises SET finished_at = $2 WHERE origin = $1 AND finished_at IS NULL",
            )
            .bind(origin)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// Revoke at most `limit` valid certificates signed by key generation `generation` of
    /// `issuer_id` (not the CA's own certificate, see `NOT_OWN_CERT`), with `reason`, in one
    /// transaction with one audit entry (`event`, whose details gain the count and the serials)
    /// and the OCSP epoch bump and events replicas apply, as [`Store::revoke`] does for one.
    /// Returns the serials revoked and the epoch; none left: empty, nothing written.
    pub async fn compromise_revoke_batch(
        &self,
        issuer_id: &str,
        generation: i64,
        reason: RevocationReason,
        limit: i64,
        event: &AuditEvent,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            // The audit head's lock first, as every writer takes it (no lock-order inversion
            // with revocations, which bump the epoch after it), and on SQLite a write first.
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT c.serial_hex FROM certificates c WHERE c.issuer_id = $1 \
                 AND c.issuer_generation = $2 AND c.status = 'valid' AND {NOT_OWN_CERT} \
                 ORDER BY c.serial_hex LIMIT $3"
            )))
            .bind(issuer_id)
            .bind(generation)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut serials = Vec::with_capacity(rows.len());
            for r in rows {
                serials.push(r.try_get::<String, _>("serial_hex")?);
            }
            if serials.is_empty() {
                return Ok((serials, 0));
            }
            let n = i64::try_from(serials.len()).unwrap_or(i64::MAX);
            let mut q = sqlx::QueryBuilder::new("UPDATE certificates SET status = 'revoked', revoked_at = ");
            q.push_bind(ts)
                .push(", revocation_reason = ")
                .push_bind(reason.name())
                .push(" WHERE issuer_id = ")
                .push_bind(issuer_id)
                .push(" AND status = 'valid' AND serial_hex IN (");
            let mut sep = q.separated(", ");
            for s in &serials {
                sep.push_bind(s);
            }
            sep.push_unseparated(")");
            q.build().execute(&mut *tx).await?;
            let r = sqlx::query("UPDATE ocsp_state SET epoch = epoch + $1 WHERE id = 1 RETURNING epoch")
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
            let epoch: i64 = r.try_get("epoch")?;
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO ocsp_events (seq, issuer_id, serial_hex, created_at) ",
            );
            q.push_values(serials.iter().enumerate(), |mut b, (i, s)| {
                b.push_bind(epoch - n + 1 + i64::try_from(i).unwrap_or(0))
                    .push_bind(issuer_id)
                    .push_bind(s)
                    .push_bind(ts);
            });
            q.build().execute(&mut *tx).await?;
            let mut q = sqlx::QueryBuilder::new("DELETE FROM ocsp_responses WHERE issuer_id = ");
            q.push_bind(issuer_id)
                .push(" AND status <> 'revoked' AND serial_hex IN (");
            let mut sep = q.separated(", ");
            for s in &serials {
                sep.push_bind(s);
            }
            sep.push_unseparated(")");
            q.build().execute(&mut *tx).await?;
            let mut event = event.clone();
            if let Some(o) = event.details.as_object_mut() {
                o.insert("count".into(), n.into());
                o.insert("serials".into(), serials.clone().into());
            }
            let _entry = audit::append_in_tx!(tx, &event, ts);
            tx.commit().await?;
            Ok((serials, epoch))
        })
    }

    /// Certificates signed by the key generations stopped for compromise `origin`, revoked
    /// with `reason` since it started: (end-entity certificates, CA certificates).
    pub async fn compromise_revoked_counts(
        &self,
        origin: &str,
        reason: RevocationReason,
    ) -> Result<(i64, i64), StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CASE WHEN {NOT_A_CA} THEN 0 ELSE 1 END), 0) AS BIGINT) AS cas \
                 FROM certificates c WHERE {OF_STOPPED_KEYS} AND c.status = 'revoked' \
                 AND c.revocation_reason = $2 AND c.revoked_at >= \
                 (SELECT MIN(started_at) FROM ca_compromises WHERE origin = $1)"
            )))
            .bind(origin)
            .bind(reason.name())
            .fetch_one(pool)
            .await?;
            let n: i64 = r.try_get("n")?;
            let cas: i64 = r.try_get("cas")?;
            Ok((n - cas, cas))
        })
    }

    /// End-entity certificates of other holders (no key held by the service, no contract
    /// certificate) that compromise `origin` revoked, or that are still valid under its
    /// stopped keys: who must enroll again. By tenant, then profile and serial; at most
    /// `limit`.
    pub async fn compromise_reenroll(
        &self,
        origin: &str,
        limit: i64,
    ) -> Result<Vec<ReenrollEntry>, StoreError> {
        let limit = limit.clamp(1, 1_000_000);
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COALESCE(c.tenant, '') AS tenant, c.profile, c.issuer_id, c.serial_hex, \
                 c.subject, c.evse_id, c.not_after FROM certificates c WHERE {OF_STOPPED_KEYS} \
                 AND c.key_id IS NULL AND {NOT_A_CA} \
                 AND NOT EXISTS (SELECT 1 FROM provisionings p WHERE p.issuer_id = c.issuer_id \
                 AND p.serial_hex = c.serial_hex) \
                 AND (c.status = 'valid' OR c.revoked_at >= \
                 (SELECT MIN(started_at) FROM ca_compromises WHERE origin = $1)) \
                 ORDER BY tenant, c.profile, c.issuer_id, c.serial_hex LIMIT $2"
            )))
            .bind(origin)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ReenrollEntry {
                    tenant: r.try_get("tenant")?,
                    profile: r.try_get("profile")?,
                    issuer_id: r.try_get("issuer_id")?,
                    serial_hex: r.try_get("serial_hex")?,
                    subject: r.try_get("subject")?,
                    evse_id: r.try_get("evse_id")?,
                    not_after: r.try_get("not_after")?,
                });
            }
            Ok(out)
        })
    }

    /// One page of the contracts to regenerate for compromise `origin`: of the (at most
    /// `limit`) active contracts after contract id `after` (`""` for the first page), by id,
    /// those of a pooled vehicle that had a certificate signed by a key stopped for `origin`
    /// and have no valid pre-generated contract data under a key that is not stopped. Returns
    /// them and the id to continue after (`None`: no contract after this page).
    ///
    /// Why pages of contracts and not one query for the next `limit` due ones: no planner
    /// can tell how many contracts such a query must read to find them. PostgreSQL computed
    /// every due contract of the store and sorted them, for each page (200 ms a page at 10,000
    /// contracts, 10 s of a 60 s regeneration; with stale statistics a rewrite as correlated
    /// subqueries took minutes). Here each query is bounded by the page: the contracts by
    /// primary key, then their certificates and pre-generated data by contract id, and the
    /// (few) stopped keys compared in memory.
    pub async fn compromise_contracts_due(
        &self,
        origin: &str,
        after: &str,
        limit: i64,
    ) -> Result<(Vec<ContractToRegenerate>, Option<String>), StoreError> {
        // (contract id, EMAID, PCID, namespace of the pooled vehicle if it is pooled)
        type PageRow = (String, String, String, Option<String>);
        // (contract id, issuer, key generation, status)
        type CertOf = (String, String, i64, String);
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT k.id, k.emaid, k.pcid, pc.namespace FROM contracts k \
                 LEFT JOIN prov_certs pc ON pc.pcid = k.pcid \
                 WHERE k.status = 'active' AND k.id > $1 ORDER BY k.id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut page: Vec<PageRow> = Vec::with_capacity(rows.len());
            for r in rows {
                page.push((
                    r.try_get("id")?,
                    r.try_get("emaid")?,
                    r.try_get("pcid")?,
                    r.try_get("namespace")?,
                ));
            }
            let next = match page.last() {
                Some(last) if i64::try_from(page.len()).unwrap_or(i64::MAX) >= limit => {
                    Some(last.0.clone())
                }
                _ => None,
            };
            let pooled: Vec<&str> = page
                .iter()
                .filter(|r| r.3.is_some())
                .map(|r| r.0.as_str())
                .collect();
            if pooled.is_empty() {
                return Ok((Vec::new(), next));
            }
            let stopped_rows = sqlx::query("SELECT ca_id, generation, origin FROM ca_compromises")
                .fetch_all(pool)
                .await?;
            let mut stopped: Vec<(String, i64, String)> = Vec::with_capacity(stopped_rows.len());
            for r in stopped_rows {
                stopped.push((r.try_get("ca_id")?, r.try_get("generation")?, r.try_get("origin")?));
            }
            let certs_of = |sql: &'static str| {
                let mut q = sqlx::QueryBuilder::new(sql);
                let mut list = q.separated(", ");
                for id in &pooled {
                    list.push_bind(*id);
                }
                q.push(")");
                q
            };
            let mut issued_q = certs_of(
                "SELECT p.contract_id, c.issuer_id, c.issuer_generation, c.status \
                 FROM provisionings p JOIN certificates c \
                 ON c.issuer_id = p.issuer_id AND c.serial_hex = p.serial_hex \
                 WHERE p.contract_id IN (",
            );
            let mut pregen_q = certs_of(
                "SELECT g.contract_id, c.issuer_id, c.issuer_generation, c.status \
                 FROM pregenerated g JOIN certificates c \
                 ON c.issuer_id = g.issuer_id AND c.serial_hex = g.serial_hex \
                 WHERE g.contract_id IN (",
            );
            let issued = certs_of_rows!(issued_q.build().fetch_all(pool).await?);
            let pregenerated = certs_of_rows!(pregen_q.build().fetch_all(pool).await?);
            // The same conditions as `OF_STOPPED_KEYS` and `REGENERATED` (used by the counts).
            let of_origin = |(_, ca, generation, _): &CertOf| {
                stopped.iter().any(|(c, g, o)| c == ca && g == generation && o == origin)
            };
            let regenerated = |(_, ca, generation, status): &CertOf| {
                status == "valid" && !stopped.iter().any(|(c, g, _)| c == ca && g == generation)
            };
            let signed_by_stopped: std::collections::HashSet<&str> = issued
                .iter()
                .filter(|c| of_origin(c))
                .map(|c| c.0.as_str())
                .collect();
            let has_new_data: std::collections::HashSet<&str> = pregenerated
                .iter()
                .filter(|c| regenerated(c))
                .map(|c| c.0.as_str())
                .collect();
            let due = page
                .into_iter()
                .filter_map(|(contract_id, emaid, pcid, namespace)| {
                    let namespace = namespace?;
                    let id = contract_id.as_str();
                    let is_due = signed_by_stopped.contains(id) && !has_new_data.contains(id);
                    is_due.then_some(ContractToRegenerate {
                        contract_id,
                        emaid,
                        pcid,
                        namespace,
                    })
                })
                .collect();
            Ok((due, next))
        })
    }

    /// Active contracts that had a certificate signed by a key stopped for compromise `origin`
    /// and now have valid pre-generated contract data under another key.
    pub async fn compromise_contracts_regenerated(&self, origin: &str) -> Result<i64, StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM contracts k WHERE k.status = 'active' \
                 AND EXISTS (SELECT 1 FROM provisionings p JOIN certificates c \
                   ON c.issuer_id = p.issuer_id AND c.serial_hex = p.serial_hex \
                   WHERE p.contract_id = k.id AND {OF_STOPPED_KEYS}) \
                 AND EXISTS ({REGENERATED})"
            )))
            .bind(origin)
            .fetch_one(pool)
            .await?;
            Ok(r.try_get("n")?)
        })
    }
}

/// What a compromise response of the key generations `keys` would touch, counted before it
/// starts (the console's confirmation page): see [`Store::compromise_preview`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompromisePreviewCounts {
    /// Valid end-entity certificates (leaves, OCSP signers) the keys signed.
    pub end_entity: i64,
    /// Valid CA certificates the keys signed (the CAs below).
    pub ca_certs: i64,
    /// Active contracts of a pooled vehicle with a contract certificate under one of the keys
    /// and no valid pre-generated data under another key yet: what the response regenerates
    /// (for a resumed one, what is left).
    pub contracts: i64,
    /// Valid certificates of other holders (no key held by the service, no contract
    /// certificate) under the keys, by tenant (empty: none): who will have to enroll again.
    pub reenroll_by_tenant: Vec<(String, i64)>,
}

/// `({c}.issuer_id, {c}.issuer_generation)` (`c`: a certificates alias) is one of `n` pairs
/// bound as `$1, $2` (first pair), `$3, $4`, …: a bracketed SQL condition.
fn signed_by_one_of(c: &str, n: usize) -> String {
    let alts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "({c}.issuer_id = ${} AND {c}.issuer_generation = ${})",
                2 * i + 1,
                2 * i + 2
            )
        })
        .collect();
    format!("({})", alts.join(" OR "))
}

/// Bind the `keys` of [`signed_by_one_of`] to `q`.
macro_rules! bind_keys {
    ($q:expr, $keys:expr) => {{
        let mut q = $q;
        for (ca, generation) in $keys {
            q = q.bind(ca).bind(generation);
        }
        q
    }};
}

impl Store {
    /// Count what stopping the key generations `keys` (CA id, generation) would revoke and
    /// re-issue, without changing anything: valid certificates they signed (end-entity and
    /// CA), contracts of pooled vehicles to regenerate, holders to enroll again by tenant.
    pub async fn compromise_preview(
        &self,
        keys: &[(String, i64)],
    ) -> Result<CompromisePreviewCounts, StoreError> {
        if keys.is_empty() {
            return Ok(CompromisePreviewCounts::default());
        }
        let signed = signed_by_one_of("c", keys.len());
        // Regenerated already (a resumed response): valid pre-generated data under another key,
        // the rule of `REGENERATED` with the keys in place of the stopped ones.
        let other_key = signed_by_one_of("c2", keys.len());
        dispatch!(&self.db, pool => {
            let r = bind_keys!(sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CASE WHEN {NOT_A_CA} THEN 0 ELSE 1 END), 0) \
                 AS BIGINT) AS cas FROM certificates c WHERE c.status = 'valid' AND {signed}"
            ))), keys)
            .fetch_one(pool)
            .await?;
            let n: i64 = r.try_get("n")?;
            let ca_certs: i64 = r.try_get("cas")?;

            let rows = bind_keys!(sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COALESCE(c.tenant, '') AS tenant, COUNT(*) AS n FROM certificates c \
                 WHERE c.status = 'valid' AND c.key_id IS NULL AND {NOT_A_CA} \
                 AND NOT EXISTS (SELECT 1 FROM provisionings p WHERE p.issuer_id = c.issuer_id \
                 AND p.serial_hex = c.serial_hex) AND {signed} \
                 GROUP BY COALESCE(c.tenant, '') ORDER BY 1"
            ))), keys)
            .fetch_all(pool)
            .await?;
            let mut reenroll_by_tenant = Vec::new();
            for r in rows {
                reenroll_by_tenant.push((r.try_get::<String, _>("tenant")?, r.try_get::<i64, _>("n")?));
            }

            let contracts: i64 = bind_keys!(sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM contracts k JOIN prov_certs pc ON pc.pcid = k.pcid \
                 WHERE k.status = 'active' AND EXISTS (SELECT 1 FROM provisionings p \
                 JOIN certificates c ON c.issuer_id = p.issuer_id AND c.serial_hex = p.serial_hex \
                 WHERE p.contract_id = k.id AND {signed}) \
                 AND NOT EXISTS (SELECT 1 FROM pregenerated g JOIN certificates c2 \
                 ON c2.issuer_id = g.issuer_id AND c2.serial_hex = g.serial_hex \
                 WHERE g.contract_id = k.id AND c2.status = 'valid' AND NOT {other_key})"
            ))), keys)
            .fetch_one(pool)
            .await?
            .try_get("n")?;
            Ok(CompromisePreviewCounts {
                end_entity: n - ca_certs,
                ca_certs,
                contracts,
                reenroll_by_tenant,
            })
        })
    }
}

/// Contract `k` has valid pre-generated data signed by a key that is not stopped. The same rule
/// is applied in memory by `Store::compromise_contracts_due`, and by `Store::compromise_preview`
/// with the keys it is asked about: change all three.
const REGENERATED: &str = "SELECT 1 FROM pregenerated g JOIN certificates c2 \
     ON c2.issuer_id = g.issuer_id AND c2.serial_hex = g.serial_hex \
     WHERE g.contract_id = k.id AND c2.status = 'valid' AND NOT EXISTS \
     (SELECT 1 FROM ca_compromises s2 WHERE s2.ca_id = c2.issuer_id \
     AND s2.generation = c2.issuer_generation)";
