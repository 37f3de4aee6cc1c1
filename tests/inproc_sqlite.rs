//! In-process scenarios on SQLite: with an injected clock instead of sleeping, expired certificates
//! leave the CRL and a revoker waits for a dead replica's lease; the CPS key signs EXI signatures
//! through the CA. One deployment per test binary (see `inproc`).

mod common;
mod inproc;

#[test]
fn crl_expiry_dead_replica_lease_and_cps_signer() {
    let env = common::Env::new(common::Backend::Sqlite);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let t = inproc::open(&env).await;
        inproc::expired_certificates_leave_the_crl(&t).await;
        inproc::revoker_waits_for_a_dead_replicas_lease(&t).await;
        inproc::cps_key_signs_exi_signatures(&t).await;
        inproc::a_stale_crl_is_regenerated_once_for_concurrent_requests(&t).await;
    });
}
