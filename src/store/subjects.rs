//! The one-time rewrite of subject names stored before they were RFC 4514-escaped (migration
//! 0015 lists those rows). Until a row is rewritten its `subject` is the old, unescaped text:
//! for a name without special characters the two are the same, for one with a `,` in a value
//! they differ, and an exact comparison (the supersession of a re-issued certificate looks its
//! predecessors up by subject) would miss the old row. The rewrite runs at every start and
//! costs one empty query once it is done.

use sqlx::Row;

use super::{Store, StoreError, dispatch};

/// Rows re-rendered per round trip.
const BATCH: i64 = 500;

impl Store {
    /// Re-render the stored subject of every row migration 0015 listed with `render` (the DER
    /// of the certificate in, its subject as text out; `None` leaves the row as it is) and cross
    /// it off. Several replicas may run this at once: they write the same text. Returns how
    /// many subjects changed.
    pub async fn rewrite_legacy_subjects(
        &self,
        render: &(dyn Fn(&[u8]) -> Option<String> + Sync),
    ) -> Result<usize, StoreError> {
        let mut changed = 0;
        for (tbl, select, update) in [
            (
                "certificates",
                "SELECT t.issuer_id AS k1, t.serial_hex AS k2, t.subject, t.der FROM certificates t \
                 JOIN subject_rewrites r ON r.tbl = 'certificates' AND r.k1 = t.issuer_id \
                 AND r.k2 = t.serial_hex LIMIT $1",
                "UPDATE certificates SET subject = $1 WHERE issuer_id = $2 AND serial_hex = $3",
            ),
            (
                "cas",
                "SELECT t.id AS k1, '' AS k2, t.subject, t.cert_der AS der FROM cas t \
                 JOIN subject_rewrites r ON r.tbl = 'cas' AND r.k1 = t.id LIMIT $1",
                "UPDATE cas SET subject = $1 WHERE id = $2 AND $3 = ''",
            ),
            (
                "trusted_roots",
                "SELECT t.id AS k1, '' AS k2, t.subject, t.der FROM trusted_roots t \
                 JOIN subject_rewrites r ON r.tbl = 'trusted_roots' AND r.k1 = t.id LIMIT $1",
                "UPDATE trusted_roots SET subject = $1 WHERE id = $2 AND $3 = ''",
            ),
        ] {
            loop {
                let rows: Vec<(String, String, String, Vec<u8>)> = dispatch!(&self.db, pool => {
                    sqlx::query(select)
                        .bind(BATCH)
                        .fetch_all(pool)
                        .await?
                        .iter()
                        .map(|r| Ok((r.try_get("k1")?, r.try_get("k2")?, r.try_get("subject")?, r.try_get("der")?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()?
                });
                if rows.is_empty() {
                    break;
                }
                dispatch!(&self.db, pool => {
                    let _turn = self.turns.take().await?;
                    let mut tx = pool.begin().await?;
                    for (k1, k2, old, der) in &rows {
                        if let Some(new) = render(der).filter(|n| n != old) {
                            sqlx::query(update).bind(&new).bind(k1).bind(k2).execute(&mut *tx).await?;
                            changed += 1;
                        }
                        sqlx::query("DELETE FROM subject_rewrites WHERE tbl = $1 AND k1 = $2 AND k2 = $3")
                            .bind(tbl)
                            .bind(k1)
                            .bind(k2)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                });
            }
            // Listed rows whose certificate is gone (none are deleted today) would stay listed.
            dispatch!(&self.db, pool => {
                let _turn = self.turns.take().await?;
                let q = format!(
                    "DELETE FROM subject_rewrites WHERE tbl = '{tbl}' AND NOT EXISTS (SELECT 1 FROM {tbl} t WHERE {})",
                    match tbl {
                        "certificates" => "t.issuer_id = subject_rewrites.k1 AND t.serial_hex = subject_rewrites.k2",
                        _ => "t.id = subject_rewrites.k1",
                    }
                );
                sqlx::query(sqlx::AssertSqlSafe(q)).execute(pool).await?;
            });
        }
        if changed > 0 {
            tracing::info!(changed, "stored subject names rewritten in RFC 4514 form");
        }
        Ok(changed)
    }
}
