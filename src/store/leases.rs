//! Leases of background jobs across replicas: OCSP re-production, OCSP signer renewal and the
//! supersession sweeps run on one replica at a time (whichever holds the lease), on both stores.

use super::{Store, StoreError, dispatch};

impl Store {
    /// Take or renew the lease of `job` for `holder` until `now_ms + ttl_ms`; true when held.
    /// Another holder's lease is taken over only once it has run out.
    pub async fn job_lease(
        &self,
        job: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let done = sqlx::query(
                "INSERT INTO job_leases (job, holder, until_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
                 WHERE job_leases.holder = excluded.holder OR job_leases.until_ms < $4",
            )
            .bind(job)
            .bind(holder)
            .bind(now_ms.saturating_add(ttl_ms))
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Give a lease up (graceful shutdown), so another replica need not wait for it to run out.
    pub async fn release_job_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
                .bind(job)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
