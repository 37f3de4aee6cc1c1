//! Contract provisioning state: trusted external roots, the OEM provisioning certificate pool,
//! contracts, and the link from each issued contract certificate to the request that produced
//! it. Every change commits with its audit entry; an installation's certificate, its link and
//! its audit entry commit in one transaction.

use sqlx::Row;

use super::{
    CERT_COLUMNS, Store, StoreError, audit, cert_from_row, corrupt, dispatch, is_unique_violation,
    reason_of, status_of,
};
use crate::model::{
    AuditEvent, CertRecord, ContractRecord, ContractStatus, Pregenerated, ProvCertRecord,
    ProvisioningLink, RootKind, TrustedRoot,
};

const ROOT_COLUMNS: &str = "id, kind, subject, serial_hex, not_before, not_after, der, added_at";
const PROV_COLUMNS: &str = "pcid, tenant, namespace, leaf_der, sub_ca1_der, sub_ca2_der, root_der, uploaded_by, uploaded_at";
const CONTRACT_COLUMNS: &str = "id, emaid, pcid, tenant, issuer_id, organization, valid_from, valid_to, grace_seconds, status, created_by, created_at, cancelled_at";

macro_rules! root_from_row {
    ($row:expr) => {{
        let r = $row;
        let kind: String = r.try_get("kind")?;
        TrustedRoot {
            id: r.try_get("id")?,
            kind: kind
                .parse::<RootKind>()
                .map_err(|_| corrupt("root kind", &kind))?,
            subject: r.try_get("subject")?,
            serial_hex: r.try_get("serial_hex")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
            der: r.try_get("der")?,
            added_at: r.try_get("added_at")?,
        }
    }};
}

macro_rules! prov_from_row {
    ($row:expr) => {{
        let r = $row;
        ProvCertRecord {
            pcid: r.try_get("pcid")?,
            tenant: r.try_get("tenant")?,
            namespace: r.try_get("namespace")?,
            leaf_der: r.try_get("leaf_der")?,
            sub_ca1_der: r.try_get("sub_ca1_der")?,
            sub_ca2_der: r.try_get("sub_ca2_der")?,
            root_der: r.try_get("root_der")?,
            uploaded_by: r.try_get("uploaded_by")?,
            uploaded_at: r.try_get("uploaded_at")?,
        }
    }};
}

macro_rules! contract_from_row {
    ($row:expr) => {{
        let r = $row;
        let status: String = r.try_get("status")?;
        ContractRecord {
            id: r.try_get("id")?,
            emaid: r.try_get("emaid")?,
            pcid: r.try_get("pcid")?,
            tenant: r.try_get("tenant")?,
            issuer_id: r.try_get("issuer_id")?,
            organization: r.try_get("organization")?,
            valid_from: r.try_get("valid_from")?,
            valid_to: r.try_get("valid_to")?,
            grace_seconds: r.try_get("grace_seconds")?,
            status: ContractStatus::from_db(&status)
                .ok_or_else(|| corrupt("contract status", &status))?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            cancelled_at: r.try_get("cancelled_at")?,
        }
    }};
}

/// Insert a pre-generated answer inside an open transaction.
macro_rules! insert_pregenerated {
    ($tx:expr, $p:expr) => {{
        let p: &$crate::model::Pregenerated = $p;
        sqlx::query(
            "INSERT INTO pregenerated (contract_id, schema_version, issuer_id, serial_hex, \
             oem_sha256, not_after, exi, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.contract_id)
        .bind(&p.schema_version)
        .bind(&p.issuer_id)
        .bind(&p.serial_hex)
        .bind(&p.oem_sha256)
        .bind(p.not_after)
        .bind(&p.exi)
        .bind(p.created_at)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(super) use insert_pregenerated;

/// Insert the `provisionings` rows of `$links` (`&[(&CertRecord, &ProvisioningLink)]`, each
/// certificate already inserted) on `$conn`, in one statement; `?`s a database error.
macro_rules! insert_provisionings {
    ($conn:expr, $links:expr) => {{
        let links: &[(&$crate::model::CertRecord, &$crate::model::ProvisioningLink)] = $links;
        if !links.is_empty() {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO provisionings (issuer_id, serial_hex, contract_id, kind, schema_version, \
                 request_sha256, request, response_size, response, created_at) ",
            );
            q.push_values(links, |mut b, (cert, link)| {
                let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&link.request));
                b.push_bind(&cert.issuer_id)
                    .push_bind(&cert.serial_hex)
                    .push_bind(&link.contract_id)
                    .push_bind(link.kind.as_str())
                    .push_bind(link.schema_version)
                    .push_bind(sha)
                    .push_bind(&link.request)
                    .push_bind(i64::try_from(link.response_size).unwrap_or(i64::MAX))
                    .push_bind(&link.response)
                    .push_bind(cert.created_at);
            });
            q.build().execute(&mut *$conn).await?;
        }
    }};
}
pub(super) use insert_provisionings;

/// Close the provisioning of the certificate (`$issuer`, `$serial`) on `$conn` at `$ts`: it is
/// superseded (scheduled or revoked), and what a later installation supersedes is looked up
/// among the contract's open provisionings only ([`TO_SUPERSEDE`]). `?`s a database error.
macro_rules! close_provisioning {
    ($conn:expr, $issuer:expr, $serial:expr, $ts:expr) => {{
        sqlx::query(
            "UPDATE provisionings SET closed_at = $1 \
             WHERE issuer_id = $2 AND serial_hex = $3 AND closed_at IS NULL",
        )
        .bind($ts)
        .bind($issuer)
        .bind($serial)
        .execute(&mut *$conn)
        .await?;
    }};
}
pub(super) use close_provisioning;

/// The rest of a provisioning's rows on `$conn`, after its certificate and `provisionings` row:
/// the supersessions it schedules (or, with no grace period, the revocations), its pre-generated
/// answer (replacing the contract's previous one for the schema, whose certificate it revokes)
/// and its idempotency key with the answer its retries get. Evaluates to the certificates it
/// revoked (`Vec<SupersededNow>`); `?`s an error.
macro_rules! link_rows {
    ($conn:expr, $cert:expr, $link:expr, $ts:expr) => {{
        let cert: &$crate::model::CertRecord = $cert;
        let link: &$crate::model::ProvisioningLink = $link;
        let superseded = $crate::model::RevocationReason::Superseded;
        let mut revoked: Vec<$crate::store::SupersededNow> = Vec::new();
        for (old_issuer, old_serial) in &link.supersedes {
            $crate::store::provisioning::close_provisioning!($conn, old_issuer, old_serial, $ts);
            if link.supersede_at <= $ts {
                // No grace period: revoked with the commit that records its successor, so the
                // answer never goes out while it is valid and no second transaction is needed.
                if let Some((epoch, issuer_generation)) = $crate::store::revoke_in_tx!(
                    $conn, old_issuer, old_serial, superseded, $ts, $ts
                ) {
                    revoked.push($crate::store::SupersededNow {
                        issuer_id: old_issuer.clone(),
                        serial_hex: old_serial.clone(),
                        issuer_generation,
                        epoch,
                    });
                }
                continue;
            }
            sqlx::query(
                "INSERT INTO supersessions (issuer_id, serial_hex, by_issuer, by_serial, supersede_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer_id, serial_hex) DO NOTHING",
            )
            .bind(old_issuer)
            .bind(old_serial)
            .bind(&cert.issuer_id)
            .bind(&cert.serial_hex)
            .bind(link.supersede_at)
            .execute(&mut *$conn)
            .await?;
        }
        if let Some((oem_sha, exi)) = &link.pregenerated {
            let old = sqlx::query(
                "DELETE FROM pregenerated WHERE contract_id = $1 AND schema_version = $2 \
                 RETURNING issuer_id, serial_hex",
            )
            .bind(&link.contract_id)
            .bind(link.schema_version)
            .fetch_optional(&mut *$conn)
            .await?;
            if let Some(r) = old {
                // The answer it replaces was never delivered: its certificate is revoked with
                // this commit (one revoked already, e.g. for its key's compromise, stays as is).
                let old_issuer: String = sqlx::Row::try_get(&r, "issuer_id")?;
                let old_serial: String = sqlx::Row::try_get(&r, "serial_hex")?;
                $crate::store::provisioning::close_provisioning!(
                    $conn,
                    &old_issuer,
                    &old_serial,
                    $ts
                );
                if let Some((epoch, issuer_generation)) = $crate::store::revoke_in_tx!(
                    $conn, &old_issuer, &old_serial, superseded, $ts, $ts
                ) {
                    revoked.push($crate::store::SupersededNow {
                        issuer_id: old_issuer,
                        serial_hex: old_serial,
                        issuer_generation,
                        epoch,
                    });
                }
            }
            $crate::store::provisioning::insert_pregenerated!(
                $conn,
                &$crate::model::Pregenerated {
                    contract_id: link.contract_id.clone(),
                    schema_version: link.schema_version.to_string(),
                    issuer_id: cert.issuer_id.clone(),
                    serial_hex: cert.serial_hex.clone(),
                    oem_sha256: oem_sha.clone(),
                    not_after: cert.not_after,
                    exi: exi.clone(),
                    created_at: cert.created_at,
                }
            );
        }
        if let Some((k, answer)) = &link.idempotency {
            $crate::store::batch::insert_idem!(
                &mut *$conn,
                k,
                &cert.issuer_id,
                &cert.serial_hex,
                Some(answer.as_slice()),
                $ts
            )?;
        }
        revoked
    }};
}
pub(super) use link_rows;

/// A certificate a provisioning revoked (`superseded`) in the transaction that recorded it: one
/// its contract's grace period of 0 lets go at once, or the certificate of the pre-generated
/// answer it replaced. The caller tells OCSP replicas and renews the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupersededNow {
    /// Its issuer.
    pub issuer_id: String,
    /// Its serial.
    pub serial_hex: String,
    /// The issuer's key generation that signed it (whose CRL lists it).
    pub issuer_generation: i64,
    /// The OCSP epoch of its revocation (`ocsp::freshness`).
    pub epoch: i64,
}

/// Which contracts to list.
#[derive(Debug, Clone, Default)]
pub struct ContractQuery {
    /// Only this EMAID.
    pub emaid: Option<String>,
    /// Only this PCID.
    pub pcid: Option<String>,
    /// Only these tenants (`None`: all).
    pub tenants: Option<Vec<String>>,
    /// At most this many (clamped to 1..=1000).
    pub limit: i64,
}

/// A certificate whose replacement's grace period has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSupersession {
    /// The replacement (its provisioning row holds the due time).
    pub issuer_id: String,
    /// The replacement's serial.
    pub serial_hex: String,
    /// The certificate to revoke.
    pub old_issuer_id: String,
    /// Its serial.
    pub old_serial_hex: String,
}

/// A provisioning found by its request (see [`Store::provisioning_by_request`]).
#[derive(Debug, Clone)]
pub struct PriorProvisioning {
    /// Issuer of the certificate it delivered.
    pub issuer_id: String,
    /// Its serial.
    pub serial_hex: String,
    /// The contract.
    pub contract_id: String,
    /// `install` or `update`.
    pub kind: String,
    /// `iso15118-2` or `iso15118-20`.
    pub schema_version: String,
    /// The answer delivered (absent for provisionings recorded before 0014).
    pub response: Option<Vec<u8>>,
}

/// The query of [`Store::contract_certificates_to_supersede`]: the contract's open provisionings
/// first (by index: `(contract_id, closed_at)`, so not the contract's history), each
/// certificate looked up by key. Left to themselves, without current
/// statistics (a new deployment, a table that just grew), both databases walked every valid
/// contract certificate of the store through the `(status, not_after)` or `profile` index
/// instead (PostgreSQL: 7.5 ms instead of 0.3 ms at 1,000 contracts, growing with the fleet).
/// CROSS JOIN fixes SQLite's join order; the certificate's conditions are written so that no
/// index can serve them (`|| ''`, `+ 0`), which leaves PostgreSQL, which reorders a CROSS JOIN,
/// only the key lookup. The SQLite plan is checked by a test (`store::plans`).
pub(super) const TO_SUPERSEDE: &str = "SELECT c.issuer_id, c.serial_hex FROM provisionings p \
     CROSS JOIN certificates c WHERE c.issuer_id = p.issuer_id AND c.serial_hex = p.serial_hex \
     AND p.contract_id = $1 AND p.closed_at IS NULL \
     AND c.profile || '' = $2 AND c.status || '' = 'valid' \
     AND c.not_after + 0 > $3 \
     AND NOT EXISTS (SELECT 1 FROM supersessions s \
       WHERE s.issuer_id = c.issuer_id AND s.serial_hex = c.serial_hex) \
     ORDER BY c.created_at DESC, c.serial_hex";

impl Store {
    // ---------------------------------------------------------------------- trusted roots

    /// Trust an external root; refused (`Taken`) when it is trusted already.
    pub async fn add_trusted_root(
        &self,
        root: &TrustedRoot,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO trusted_roots ({ROOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )))
            .bind(&root.id)
            .bind(root.kind.as_str())
            .bind(&root.subject)
            .bind(&root.serial_hex)
            .bind(root.not_before)
            .bind(root.not_after)
            .bind(&root.der)
            .bind(root.added_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Taken(format!("root {} is trusted already", root.id))
                } else {
                    StoreError::Db(e)
                }
            })?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every trusted external root, oldest first.
    pub async fn list_trusted_roots(&self) -> Result<Vec<TrustedRoot>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ROOT_COLUMNS} FROM trusted_roots ORDER BY added_at, id"
            )))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(root_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Stop trusting a root; `false` when it was not trusted.
    pub async fn remove_trusted_root(
        &self,
        id: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let n = sqlx::query("DELETE FROM trusted_roots WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                // Nothing changed: the audit entry goes too.
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    // ----------------------------------------------------------------- provisioning pool

    /// Store (or replace) a vehicle's OEM provisioning chain.
    pub async fn put_prov_cert(
        &self,
        p: &ProvCertRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query("DELETE FROM prov_certs WHERE pcid = $1")
                .bind(&p.pcid)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO prov_certs ({PROV_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )))
            .bind(&p.pcid)
            .bind(&p.tenant)
            .bind(&p.namespace)
            .bind(&p.leaf_der)
            .bind(&p.sub_ca1_der)
            .bind(&p.sub_ca2_der)
            .bind(&p.root_der)
            .bind(&p.uploaded_by)
            .bind(p.uploaded_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The pool, newest upload first, optionally of one tenant (PCID WMI).
    pub async fn list_prov_certs(
        &self,
        tenant: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ProvCertRecord>, StoreError> {
        let tenant = tenant.unwrap_or_default().to_string();
        let limit = limit.clamp(1, 1000);
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {PROV_COLUMNS} FROM prov_certs WHERE ($1 = '' OR tenant = $1) \
                 ORDER BY uploaded_at DESC, pcid LIMIT $2"
            )))
            .bind(&tenant)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(prov_from_row!(r));
            }
            Ok(out)
        })
    }

    /// A vehicle's chain by PCID.
    pub async fn get_prov_cert(&self, pcid: &str) -> Result<Option<ProvCertRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {PROV_COLUMNS} FROM prov_certs WHERE pcid = $1"
            )))
            .bind(pcid)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(prov_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Remove a vehicle's chain; `false` when there was none.
    pub async fn delete_prov_cert(
        &self,
        pcid: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let n = sqlx::query("DELETE FROM prov_certs WHERE pcid = $1")
                .bind(pcid)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    // -------------------------------------------------------------------------- contracts

    /// Create a contract; `Taken` when its EMAID has an active contract already.
    pub async fn insert_contract(
        &self,
        c: &ContractRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            )))
            .bind(&c.id)
            .bind(&c.emaid)
            .bind(&c.pcid)
            .bind(&c.tenant)
            .bind(&c.issuer_id)
            .bind(&c.organization)
            .bind(c.valid_from)
            .bind(c.valid_to)
            .bind(c.grace_seconds)
            .bind(c.status.as_str())
            .bind(&c.created_by)
            .bind(c.created_at)
            .bind(c.cancelled_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Taken(format!("EMAID {} has an active contract already", c.emaid))
                } else {
                    StoreError::Db(e)
                }
            })?;
            super::defaults::record_first!(tx, c);
            tx.commit().await?;
            Ok(())
        })
    }

    /// A contract by id.
    pub async fn get_contract(&self, id: &str) -> Result<Option<ContractRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(contract_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Contracts matching `q`, newest first.
    pub async fn list_contracts(
        &self,
        q: &ContractQuery,
    ) -> Result<Vec<ContractRecord>, StoreError> {
        let mut sql = format!("SELECT {CONTRACT_COLUMNS} FROM contracts WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(e) = &q.emaid {
            args.push(e.clone());
            sql.push_str(&format!(" AND emaid = ${}", args.len()));
        }
        if let Some(p) = &q.pcid {
            args.push(p.clone());
            sql.push_str(&format!(" AND pcid = ${}", args.len()));
        }
        if let Some(ts) = &q.tenants {
            if ts.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for t in ts {
                args.push(t.clone());
                marks.push(format!("${}", args.len()));
            }
            sql.push_str(&format!(" AND tenant IN ({})", marks.join(", ")));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id LIMIT {}",
            q.limit.clamp(1, 1000)
        ));
        dispatch!(&self.db, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for a in &args {
                query = query.bind(a);
            }
            let rows = query.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(contract_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Mark a contract cancelled (idempotent: `false` when it was cancelled already).
    ///
    /// With an idempotency key, the key is recorded with the contract's still valid
    /// certificates (`[[issuer, serial], …]`, newest first: what the cancellation then revokes
    /// and answers): in the cancellation's transaction when this call cancelled, alone when the
    /// contract was cancelled before. Its certificate columns hold `contract` and the contract's
    /// id. A key another call committed first fails the call with
    /// [`StoreError::IdempotencyKeyTaken`], and nothing of it is stored.
    pub async fn cancel_contract(
        &self,
        id: &str,
        at: i64,
        event: &AuditEvent,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        // The key with what a keyed cancellation answers (the contract's valid certificates),
        // read in the transaction that records it.
        macro_rules! record_key {
            ($tx:ident, $k:expr) => {{
                let rows = sqlx::query(
                    "SELECT c.issuer_id, c.serial_hex FROM certificates c JOIN provisionings p \
                     ON p.issuer_id = c.issuer_id AND p.serial_hex = c.serial_hex \
                     WHERE p.contract_id = $1 AND c.status = 'valid' \
                     ORDER BY c.created_at DESC, c.serial_hex",
                )
                .bind(id)
                .fetch_all(&mut *$tx)
                .await?;
                let mut list: Vec<(String, String)> = Vec::with_capacity(rows.len());
                for r in rows {
                    list.push((r.try_get("issuer_id")?, r.try_get("serial_hex")?));
                }
                let answer =
                    serde_json::to_vec(&list).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                super::batch::insert_idem!(
                    &mut *$tx,
                    $k,
                    "contract",
                    id,
                    Some(answer.as_slice()),
                    ts
                )?;
                super::batch::purge_idem!(&mut *$tx, ts);
            }};
        }
        let cancelled = dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let n = sqlx::query(
                "UPDATE contracts SET status = 'cancelled', cancelled_at = $1 WHERE id = $2 AND status = 'active'",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                false
            } else {
                sqlx::query("DELETE FROM pregenerated WHERE contract_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(k) = idem {
                    record_key!(tx, k);
                }
                tx.commit().await?;
                true
            }
        });
        if !cancelled && let Some(k) = idem {
            // Cancelled before (maybe by a call that died before revoking everything): the key
            // with what this call will revoke, so that its retries answer the same.
            dispatch!(&self.db, pool => {
                let _turn = self.turns.take().await?;
                let mut tx = pool.begin().await?;
                record_key!(tx, k);
                tx.commit().await?;
            });
        }
        Ok(cancelled)
    }

    /// Every certificate issued under a contract, newest first.
    pub async fn contract_certificates(
        &self,
        contract_id: &str,
    ) -> Result<Vec<CertRecord>, StoreError> {
        let cols: String = CERT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM certificates c JOIN provisionings p \
                 ON p.issuer_id = c.issuer_id AND p.serial_hex = c.serial_hex \
                 WHERE p.contract_id = $1 ORDER BY c.created_at DESC, c.serial_hex"
            )))
            .bind(contract_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(cert_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The contract's certificates of `profile` that are valid at `now` and not already due to
    /// be superseded (no `supersessions` row), as (issuer, serial), newest first: what a new
    /// certificate of the contract supersedes. Only keys are read, and a certificate scheduled
    /// by an earlier installation is not scheduled again, so an installation costs the same
    /// however many certificates the contract had before (`contract_certificates` reads every
    /// one of them, DER included).
    pub async fn contract_certificates_to_supersede(
        &self,
        contract_id: &str,
        profile: &str,
        now: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(TO_SUPERSEDE)
            .bind(contract_id)
            .bind(profile)
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("issuer_id")?, r.try_get("serial_hex")?));
            }
            Ok(out)
        })
    }

    /// The contract a certificate was provisioned under, if it was.
    pub async fn contract_of_certificate(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT contract_id FROM provisionings WHERE issuer_id = $1 AND serial_hex = $2",
            )
            .bind(issuer_id)
            .bind(serial_hex)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(r.try_get("contract_id")?)),
                None => Ok(None),
            }
        })
    }

    /// Record a provisioned contract certificate, the request that produced it and its audit
    /// entry in one transaction, with what it supersedes: scheduled for revocation, or revoked
    /// in this transaction when `link.supersede_at` is not in the future (each revocation with
    /// its own `certificate.revoke` audit entry and OCSP epoch); for a pre-generated answer, the
    /// answer, replacing the contract's previous one, whose certificate is revoked likewise. When
    /// the call carried one, its idempotency key with the answer its retries get. A key another
    /// call committed first fails this provisioning with [`StoreError::IdempotencyKeyTaken`],
    /// and nothing of it is stored. Group-committed with other issuances (`batch`): the answer
    /// comes after the commit. Returns the certificates revoked.
    pub async fn record_provisioning(
        &self,
        cert: &CertRecord,
        link: &ProvisioningLink,
        event: &AuditEvent,
    ) -> Result<Vec<SupersededNow>, StoreError> {
        let rows = super::batch::Rows::Provisioning(Box::new(link.clone()));
        Ok(self.group_commit(cert, event, rows).await?.revoked)
    }

    /// The latest provisioning answered for the request whose SHA-256 (hex) is `sha`.
    pub async fn provisioning_by_request(
        &self,
        sha: &str,
    ) -> Result<Option<PriorProvisioning>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT issuer_id, serial_hex, contract_id, kind, schema_version, response \
                 FROM provisionings WHERE request_sha256 = $1 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(sha)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(PriorProvisioning {
                    issuer_id: r.try_get("issuer_id")?,
                    serial_hex: r.try_get("serial_hex")?,
                    contract_id: r.try_get("contract_id")?,
                    kind: r.try_get("kind")?,
                    schema_version: r.try_get("schema_version")?,
                    response: r.try_get("response")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Link a certificate issued outside provisioning (an EST re-enrollment of a contract
    /// certificate) to its contract, so that the contract lists it and its cancellation
    /// revokes it.
    pub async fn link_to_contract(
        &self,
        cert: (&str, &str),
        contract_id: &str,
        schema_version: &str,
        request: &[u8],
        at: i64,
    ) -> Result<(), StoreError> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(request));
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query(
                "INSERT INTO provisionings (issuer_id, serial_hex, contract_id, kind, schema_version, \
                 request_sha256, request, response_size, created_at) \
                 VALUES ($1, $2, $3, 'update', $4, $5, $6, 0, $7)",
            )
            .bind(cert.0)
            .bind(cert.1)
            .bind(contract_id)
            .bind(schema_version)
            .bind(&sha)
            .bind(request)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The pre-generated answer of a contract for a schema.
    pub async fn get_pregenerated(
        &self,
        contract_id: &str,
        schema_version: &str,
    ) -> Result<Option<Pregenerated>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT contract_id, schema_version, issuer_id, serial_hex, oem_sha256, not_after, exi, \
                 created_at FROM pregenerated WHERE contract_id = $1 AND schema_version = $2",
            )
            .bind(contract_id)
            .bind(schema_version)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(Pregenerated {
                    contract_id: r.try_get("contract_id")?,
                    schema_version: r.try_get("schema_version")?,
                    issuer_id: r.try_get("issuer_id")?,
                    serial_hex: r.try_get("serial_hex")?,
                    oem_sha256: r.try_get("oem_sha256")?,
                    not_after: r.try_get("not_after")?,
                    exi: r.try_get("exi")?,
                    created_at: r.try_get("created_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Store (or replace) a pre-generated answer made from an MO's own contract data, audited.
    pub async fn put_pregenerated(
        &self,
        p: &Pregenerated,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query("DELETE FROM pregenerated WHERE contract_id = $1 AND schema_version = $2")
                .bind(&p.contract_id)
                .bind(&p.schema_version)
                .execute(&mut *tx)
                .await?;
            insert_pregenerated!(tx, p);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Delete a contract's pre-generated answers, audited; returns how many there were.
    pub async fn delete_pregenerated(
        &self,
        contract_id: &str,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let n = sqlx::query("DELETE FROM pregenerated WHERE contract_id = $1")
                .bind(contract_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Take a pre-generated answer for delivery (ISO 15118-20 answers are delivered once):
    /// false when another request took it first.
    pub async fn take_pregenerated(
        &self,
        contract_id: &str,
        schema_version: &str,
        serial_hex: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let n = sqlx::query(
                "DELETE FROM pregenerated WHERE contract_id = $1 AND schema_version = $2 AND serial_hex = $3",
            )
            .bind(contract_id)
            .bind(schema_version)
            .bind(serial_hex)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Replaced certificates whose grace period has ended by `now` (at most `limit`).
    pub async fn due_supersessions(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DueSupersession>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT issuer_id, serial_hex, supersedes_issuer, supersedes_serial FROM provisionings \
                 WHERE supersede_at IS NOT NULL AND supersede_at <= $1 ORDER BY supersede_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let old_issuer: Option<String> = r.try_get("supersedes_issuer")?;
                let old_serial: Option<String> = r.try_get("supersedes_serial")?;
                if let (Some(old_issuer_id), Some(old_serial_hex)) = (old_issuer, old_serial) {
                    out.push(DueSupersession {
                        issuer_id: r.try_get("issuer_id")?,
                        serial_hex: r.try_get("serial_hex")?,
                        old_issuer_id,
                        old_serial_hex,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Mark a supersession done (its old certificate was revoked).
    pub async fn supersession_done(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query(
                "UPDATE provisionings SET supersede_at = NULL WHERE issuer_id = $1 AND serial_hex = $2",
            )
            .bind(issuer_id)
            .bind(serial_hex)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
