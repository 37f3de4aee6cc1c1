//! Store guarantees on both databases: serials are unique per issuer (enforced by the database),
//! a refused write leaves nothing behind (no row, no audit entry), and concurrent audit appends
//! keep one unbroken chain.

mod common;

use common::*;
use pnc_pki::store::{AuditEvent, CaRecord, CertRecord, Store, StoreError};

fn ca(id: &str) -> CaRecord {
    CaRecord {
        id: id.into(),
        profile: "v2g-root".into(),
        parent_id: None,
        key_id: "00".into(),
        key_alg: "ec-p256".into(),
        serial_hex: "01".into(),
        subject: format!("CN={id}"),
        cert_der: vec![0x30, 0x00],
        not_before: 0,
        not_after: i64::MAX / 2,
        created_at: 0,
        external_chain: None,
    }
}

fn cert(issuer: &str, serial: &str) -> CertRecord {
    CertRecord {
        issuer_id: issuer.into(),
        serial_hex: serial.into(),
        profile: "secc-leaf".into(),
        subject: "CN=x".into(),
        emaid: None,
        evse_id: Some("DEABCE1231".into()),
        pcid: None,
        not_before: 0,
        not_after: i64::MAX / 2,
        status: "valid".into(),
        revoked_at: None,
        revocation_reason: None,
        key_id: None,
        tenant: Some("DE*ABC".into()),
        der: vec![0x30, 0x00],
        created_at: 0,
    }
}

fn ev(n: &str) -> AuditEvent {
    AuditEvent::new("test", n, "t", serde_json::json!({}))
}

#[test]
fn duplicate_serial_is_refused_and_leaves_nothing() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = Store::connect(&env.db_url).await.unwrap();
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"))
                .await
                .unwrap();
            store
                .record_issuance(&cert("root", "aa"), None, &ev("one"))
                .await
                .unwrap();
            let err = store
                .record_issuance(&cert("root", "aa"), None, &ev("two"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::DuplicateSerial { .. }),
                "{backend:?}: {err}"
            );
            assert!(
                err.to_string().contains("serial aa already exists"),
                "{err}"
            );
            // Same serial under another issuer is fine.
            store
                .record_issuance(&cert("other", "01"), Some(&ca("other")), &ev("ca2"))
                .await
                .unwrap();
            let report = store.audit_verify().await.unwrap();
            assert!(report.ok(), "{report:?}");
            assert_eq!(report.entries, 3, "the refused write left no audit entry");
            let all = store.list_certs(&Default::default()).await.unwrap();
            assert_eq!(all.len(), 3);
            // A duplicate CA id rolls back its certificate too.
            let err = store
                .record_issuance(&cert("root", "bb"), Some(&ca("root")), &ev("dup"))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::DuplicateCa(_)), "{err}");
            assert!(store.get_cert("root", "bb").await.unwrap().is_none());
            assert_eq!(store.audit_verify().await.unwrap().entries, 3);
        });
    }
}

#[test]
fn concurrent_audit_appends_form_one_chain() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = Store::connect(&env.db_url).await.unwrap();
            let mut tasks = Vec::new();
            for t in 0..8 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..25 {
                        s.audit(&ev(&format!("{t}-{i}"))).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let r = store.audit_verify().await.unwrap();
            assert!(r.ok(), "{backend:?}: {r:?}");
            assert_eq!(r.entries, 200);
        });
    }
}

#[test]
fn listing_filters_and_pages() {
    let env = Env::new(Backend::Sqlite);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::connect(&env.db_url).await.unwrap();
        store
            .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"))
            .await
            .unwrap();
        for i in 0..25 {
            store
                .record_issuance(&cert("root", &format!("{:02x}", 0x10 + i)), None, &ev("c"))
                .await
                .unwrap();
        }
        let mut seen = 0;
        let mut after = None;
        loop {
            let page = store
                .list_certs(&pnc_pki::store::CertFilter {
                    after: after.clone(),
                    limit: Some(10),
                    ..Default::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            seen += page.len();
            let last = page.last().unwrap();
            after = Some(format!("{}/{}", last.issuer_id, last.serial_hex));
        }
        assert_eq!(seen, 26);
        let f = pnc_pki::store::CertFilter {
            evse_id: Some("DEABCE1231".into()),
            status: Some("valid".into()),
            ..Default::default()
        };
        assert_eq!(store.list_certs(&f).await.unwrap().len(), 26);
        let f = pnc_pki::store::CertFilter {
            status: Some("revoked".into()),
            ..Default::default()
        };
        assert!(store.list_certs(&f).await.unwrap().is_empty());
        let bad = pnc_pki::store::CertFilter {
            after: Some("no-slash".into()),
            ..Default::default()
        };
        assert!(store.list_certs(&bad).await.is_err());
    });
}
