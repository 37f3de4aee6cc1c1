//! Store guarantees on both databases: serials are unique per issuer (enforced by the database),
//! a refused write leaves nothing behind (no row, no audit entry), and concurrent audit appends
//! keep one unbroken chain.

mod common;

use common::*;
use pnc_pki::alg::KeyAlg;
use pnc_pki::clock::{self, ManualClock};
use pnc_pki::events::{Audience, OutboxEvent};
use pnc_pki::model::{
    AuditEvent, AuditFilter, CaRecord, CertFilter, CertRecord, CertStatus, ClientRecord,
    ContractRecord, ContractStatus, IdempotencyKey, ProvCertRecord, ProvisioningKind,
    ProvisioningLink, RevocationReason, RevokeOutcome, StatusFilter, WebhookEndpoint,
};
use pnc_pki::policy::authz::Role;
use pnc_pki::store::{Store, StoreError};

async fn connect(url: &str) -> Store {
    Store::connect(url, clock::system()).await.unwrap()
}

fn ca(id: &str) -> CaRecord {
    CaRecord {
        id: id.into(),
        profile: "v2g-root".into(),
        parent_id: None,
        key_id: "00".into(),
        key_alg: KeyAlg::EcP256,
        serial_hex: "01".into(),
        subject: format!("CN={id}"),
        cert_der: vec![0x30, 0x00],
        not_before: 0,
        not_after: i64::MAX / 2,
        created_at: 0,
        external_chain: None,
        generation: 1,
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
        status: CertStatus::Valid,
        revoked_at: None,
        revocation_reason: None,
        key_id: None,
        tenant: Some("DE*ABC".into()),
        der: vec![0x30, 0x00],
        created_at: 0,
        issuer_generation: 1,
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
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
                .await
                .unwrap();
            store
                .record_issuance(&cert("root", "aa"), None, &ev("one"), None)
                .await
                .unwrap();
            let err = store
                .record_issuance(&cert("root", "aa"), None, &ev("two"), None)
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
                .record_issuance(&cert("other", "01"), Some(&ca("other")), &ev("ca2"), None)
                .await
                .unwrap();
            let report = store.audit_verify().await.unwrap();
            assert!(report.ok(), "{report:?}");
            assert_eq!(report.entries, 3, "the refused write left no audit entry");
            let all = store.list_certs(&Default::default()).await.unwrap();
            assert_eq!(all.len(), 3);
            // A duplicate CA id rolls back its certificate too.
            let err = store
                .record_issuance(&cert("root", "bb"), Some(&ca("root")), &ev("dup"), None)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::DuplicateCa(_)), "{err}");
            assert!(store.get_cert("root", "bb").await.unwrap().is_none());
            assert_eq!(store.audit_verify().await.unwrap().entries, 3);
        });
    }
}

#[test]
fn a_rollover_retires_the_old_key_once_and_crls_are_kept_per_key() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
                .await
                .unwrap();
            let mut next = ca("root");
            next.generation = 2;
            next.key_id = "02".into();
            next.serial_hex = "02".into();
            let mut next_cert = cert("root", "02");
            next_cert.issuer_generation = 2;
            // Two rollovers racing from generation 1: one commits, the other changes nothing.
            let event = ev("ca.rollover");
            let (a, b) = tokio::join!(
                store.record_rollover(&next, &next_cert, &event),
                store.record_rollover(&next, &next_cert, &event)
            );
            let errs: Vec<StoreError> = [a, b].into_iter().filter_map(Result::err).collect();
            assert_eq!(errs.len(), 1, "{backend:?}: exactly one rollover commits");
            assert!(
                matches!(errs[0], StoreError::ConcurrentChange(_)),
                "{backend:?}: {}",
                errs[0]
            );
            let now = store.get_ca("root").await.unwrap().unwrap();
            assert_eq!((now.generation, now.key_id.as_str()), (2, "02"));
            let retired = store.retired_ca_keys(Some("root"), 0).await.unwrap();
            assert_eq!(retired.len(), 1);
            assert_eq!(
                (retired[0].generation, retired[0].key_id.as_str()),
                (1, "00")
            );
            assert_eq!(
                store
                    .ca_generation("root", 1)
                    .await
                    .unwrap()
                    .unwrap()
                    .key_id,
                "00"
            );
            assert!(store.ca_generation("root", 3).await.unwrap().is_none());
            // An expired retired key is no longer listed for serving.
            assert!(
                store
                    .retired_ca_keys(None, i64::MAX / 2)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(store.ca_keys_fingerprint().await.unwrap(), (1, 2));

            // Revocations and CRLs are per key generation.
            let mut old_leaf = cert("root", "a1");
            old_leaf.issuer_generation = 1;
            let mut new_leaf = cert("root", "b2");
            new_leaf.issuer_generation = 2;
            for c in [&old_leaf, &new_leaf] {
                store
                    .record_issuance(c, None, &ev("leaf"), None)
                    .await
                    .unwrap();
            }
            let reason = pnc_pki::model::RevocationReason::KeyCompromise;
            store
                .revoke("root", "a1", reason, 10, &ev("r"), None)
                .await
                .unwrap();
            assert_eq!(store.revoked_count("root", 1).await.unwrap(), 1);
            assert_eq!(store.revoked_count("root", 2).await.unwrap(), 0);
            let listed = store.revoked_for_crl("root", 1, 0).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].serial_hex, "a1");
            assert!(
                store
                    .revoked_for_crl("root", 2, 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let crl = |generation, crl_number| pnc_pki::model::CrlRecord {
                issuer_id: "root".into(),
                generation,
                crl_number,
                this_update: 0,
                next_update: 10,
                revoked_count: 0,
                der: vec![generation as u8],
            };
            assert!(store.put_crl(&crl(1, 5), &ev("crl")).await.unwrap());
            assert!(store.put_crl(&crl(2, 1), &ev("crl")).await.unwrap());
            assert_eq!(
                store.get_crl("root", 1).await.unwrap().unwrap().crl_number,
                5
            );
            assert_eq!(
                store.get_crl("root", 2).await.unwrap().unwrap().der,
                vec![2]
            );
            let report = store.audit_verify().await.unwrap();
            assert!(report.ok(), "{report:?}");
        });
    }
}

#[test]
fn concurrent_audit_appends_form_one_chain() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
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
    let clock = ManualClock::at_ms(1_800_000_000_000);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::connect(&env.db_url, clock.clone()).await.unwrap();
        store
            .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
            .await
            .unwrap();
        // 25 certificates that differ in every filtered column: EVSE ID (five of them), tenant
        // (two), profile (every fifth is a contract), expiry (every fourth has expired), and
        // status (serials 0x10..0x12 revoked below).
        for i in 0..25 {
            let mut c = cert("root", &format!("{:02x}", 0x10 + i));
            c.evse_id = Some(format!("DEABCE{}", i % 5));
            c.tenant = Some(if i % 2 == 0 { "DE*ABC" } else { "DE*XYZ" }.into());
            if i % 5 == 4 {
                c.profile = "contract".into();
                c.evse_id = None;
                c.emaid = Some(format!("DE8AA00000000{i:02}"));
            }
            c.not_after = if i % 4 == 0 {
                1_700_000_000
            } else {
                1_900_000_000
            };
            store
                .record_issuance(&c, None, &ev("c"), None)
                .await
                .unwrap();
        }
        for s in ["10", "11", "12"] {
            let r = store
                .revoke(
                    "root",
                    s,
                    RevocationReason::Superseded,
                    1_800_000_000,
                    &ev("r"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(r.outcome, RevokeOutcome::Revoked);
        }
        let mut seen = 0;
        let mut after = None;
        loop {
            let page = store
                .list_certs(&CertFilter {
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
        // Every filter against an independent computation over the same 25 rows.
        let serials = |f: CertFilter| {
            let store = store.clone();
            async move {
                let mut v: Vec<String> = store
                    .list_certs(&f)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|c| c.serial_hex != "01")
                    .map(|c| c.serial_hex)
                    .collect();
                v.sort();
                v
            }
        };
        let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..25)
                .filter(|i| pred(*i))
                .map(|i| format!("{:02x}", 0x10 + i))
                .collect()
        };
        assert_eq!(
            serials(CertFilter {
                evse_id: Some("DEABCE1".into()),
                ..Default::default()
            })
            .await,
            expect(&|i| i % 5 == 1)
        );
        assert_eq!(
            serials(CertFilter {
                status: Some(StatusFilter::Revoked),
                ..Default::default()
            })
            .await,
            expect(&|i| i < 3)
        );
        assert_eq!(
            serials(CertFilter {
                status: Some(StatusFilter::Valid),
                ..Default::default()
            })
            .await,
            expect(&|i| i >= 3)
        );
        assert_eq!(
            serials(CertFilter {
                status: Some(StatusFilter::Expired),
                ..Default::default()
            })
            .await,
            expect(&|i| i >= 3 && i % 4 == 0),
            "expired = valid and past not_after by the store's clock"
        );
        assert_eq!(
            serials(CertFilter {
                tenant: Some("DE*XYZ".into()),
                ..Default::default()
            })
            .await,
            expect(&|i| i % 2 == 1)
        );
        assert_eq!(
            serials(CertFilter {
                profile: Some("contract".into()),
                ..Default::default()
            })
            .await,
            expect(&|i| i % 5 == 4)
        );
        assert_eq!(
            serials(CertFilter {
                emaid: Some("de8aa0000000009".into()),
                ..Default::default()
            })
            .await,
            expect(&|i| i == 9)
        );
        assert_eq!(
            serials(CertFilter {
                expiring_before: Some(1_800_000_000),
                ..Default::default()
            })
            .await,
            expect(&|i| i % 4 == 0)
        );
        assert_eq!(
            serials(CertFilter {
                evse_id: Some("DEABCE2".into()),
                tenant: Some("DE*ABC".into()),
                status: Some(StatusFilter::Valid),
                ..Default::default()
            })
            .await,
            expect(&|i| i % 5 == 2 && i % 2 == 0 && i >= 3),
            "filters combine with AND"
        );
        // Moving the clock moves what "expired" means: later, everything valid has expired.
        clock.set_ms(2_000_000_000_000);
        assert_eq!(
            serials(CertFilter {
                status: Some(StatusFilter::Expired),
                ..Default::default()
            })
            .await,
            expect(&|i| i >= 3)
        );
        let bad = CertFilter {
            after: Some("no-slash".into()),
            ..Default::default()
        };
        assert!(matches!(
            store.list_certs(&bad).await,
            Err(StoreError::BadCursor(_))
        ));
    });
}

/// `api:ID` finds a client's entries whether they carry its name (`api:NAME (ID)`) or not
/// (entries written before names were recorded); nothing else matches.
#[test]
fn audit_actor_filter_finds_a_client_by_id_with_or_without_its_name() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            for actor in [
                "api:pnc_1",
                "api:Example CPO (pnc_1)",
                "api:Other (pnc_12)",
                "ui:pnc_1",
                "api:pnc_10",
            ] {
                store
                    .audit(&AuditEvent::new(actor, "a", "t", serde_json::json!({})))
                    .await
                    .unwrap();
            }
            let by = |a: &str| {
                let f = AuditFilter {
                    actor: Some(a.into()),
                    ..Default::default()
                };
                let store = store.clone();
                async move {
                    store
                        .audit_entries(&f)
                        .await
                        .unwrap()
                        .iter()
                        .map(|e| e.seq)
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(by("api:pnc_1").await, vec![1, 2], "{backend:?}");
            assert_eq!(by("api:Example CPO (pnc_1)").await, vec![2]);
            assert_eq!(by("ui:pnc_1").await, vec![4]);
        });
    }
}

#[test]
fn audit_entries_page_and_filter_by_action_prefix() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            for i in 0..7 {
                let action = match i % 3 {
                    0 => "certificate.issue",
                    1 => "crl.issued",
                    _ => "certificate_x",
                };
                store
                    .audit(&AuditEvent::new(
                        "t",
                        action,
                        &format!("t{i}"),
                        serde_json::json!({"i": i}),
                    ))
                    .await
                    .unwrap();
            }
            let all = store.audit_entries(&AuditFilter::default()).await.unwrap();
            assert_eq!(
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=7).collect::<Vec<_>>()
            );
            let page = store
                .audit_entries(&AuditFilter {
                    after_seq: Some(2),
                    limit: Some(3),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                page.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![3, 4, 5]
            );
            // A prefix, not a pattern: `_` is a plain character.
            let certs = store
                .audit_entries(&AuditFilter {
                    action_prefix: Some("certificate.".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                certs.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![1, 4, 7],
                "{backend:?}"
            );
            let underscore = store
                .audit_entries(&AuditFilter {
                    action_prefix: Some("certificate_".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                underscore.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![3, 6]
            );
            let v = all[1].export_json();
            assert_eq!(v["action"], "crl.issued");
            assert_eq!(v["subject"], "t1");
            assert_eq!(v["details"]["i"], 1);
            assert_eq!(v["hash"], all[1].hash.as_str());
        });
    }
}

#[test]
fn concurrent_issuances_are_group_committed_and_one_failure_spares_the_rest() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
                .await
                .unwrap();
            store
                .record_issuance(&cert("root", "dd"), None, &ev("first"), None)
                .await
                .unwrap();
            let (b0, i0, _) = store.batch_stats();
            // 200 issuances at once, one of them a duplicate serial.
            let mut tasks = Vec::new();
            for i in 0..200u32 {
                let s = store.clone();
                let serial = if i == 77 {
                    "dd".to_string()
                } else {
                    format!("{:04x}", 0x1000 + i)
                };
                tasks.push(tokio::spawn(async move {
                    s.record_issuance(&cert("root", &serial), None, &ev(&format!("c{i}")), None)
                        .await
                }));
            }
            let mut ok = 0;
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await.unwrap() {
                    Ok(_) => ok += 1,
                    Err(StoreError::DuplicateSerial { .. }) if i == 77 => {}
                    Err(e) => panic!("{backend:?}: issuance {i}: {e}"),
                }
            }
            assert_eq!(
                ok, 199,
                "{backend:?}: every other issuance of the batch committed"
            );
            let (b1, i1, largest) = store.batch_stats();
            assert_eq!(
                i1 - i0,
                200,
                "{backend:?}: all went through the group commit"
            );
            assert!(
                b1 - b0 < 200 && largest > 1,
                "{backend:?}: issuances shared transactions ({} batches, largest {largest})",
                b1 - b0
            );
            let r = store.audit_verify().await.unwrap();
            assert!(r.ok(), "{backend:?}: {r:?}");
            // ca + first + 199: the duplicate left no audit entry.
            assert_eq!(r.entries, 201, "{backend:?}");
            assert_eq!(
                store
                    .list_certs(&CertFilter {
                        limit: Some(1000),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .len(),
                201
            );
        });
    }
}

/// A provisioning of contract `contract` (pre-generated answer `exi` when `pregenerated`).
fn link(contract: &str, pregenerated: bool, exi: &[u8]) -> ProvisioningLink {
    ProvisioningLink {
        contract_id: contract.into(),
        kind: ProvisioningKind::Install,
        schema_version: "iso15118-2",
        request: format!("req-{contract}").into_bytes(),
        response_size: exi.len(),
        supersedes: Vec::new(),
        supersede_at: 0,
        response: Some(exi.to_vec()),
        pregenerated: pregenerated.then(|| ("oem".to_string(), exi.to_vec())),
        idempotency: None,
        events: Vec::new(),
    }
}

#[test]
fn concurrent_provisionings_are_group_committed_in_order_and_one_failure_spares_the_rest() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
                .await
                .unwrap();
            store
                .record_issuance(&cert("root", "dd"), None, &ev("first"), None)
                .await
                .unwrap();
            store
                .record_issuance(&cert("root", "ee"), None, &ev("second"), None)
                .await
                .unwrap();
            // An endpoint that hears of every contract update: each committed provisioning's
            // event gets a delivery, a refused one's none.
            store
                .insert_client(
                    &ClientRecord {
                        client_id: "c1".into(),
                        name: "oem".into(),
                        role: Role::Admin,
                        tenants: Vec::new(),
                        secret_hash: String::new(),
                        cert_sha256: None,
                        disabled_at: None,
                        created_at: 0,
                    },
                    &ev("client"),
                )
                .await
                .unwrap();
            store
                .insert_webhook_endpoint(
                    &WebhookEndpoint {
                        id: "ep1".into(),
                        client_id: "c1".into(),
                        url: "https://example.com/hook".into(),
                        events: vec!["oem.contract.updated".into()],
                        status: "enabled".into(),
                        description: String::new(),
                        metadata: serde_json::json!({}),
                        api_version: "v1".into(),
                        secret: "s".into(),
                        created_at: 0,
                        updated_at: 0,
                    },
                    &ev("endpoint"),
                )
                .await
                .unwrap();
            let taken = IdempotencyKey {
                actor: "api:c1".into(),
                key: "k-taken".into(),
                request_sha256: "00".into(),
            };
            let mut first = cert("root", "0fff");
            first.der = vec![0x30, 0x01];
            let mut l = link("k-first", false, b"a");
            l.idempotency = Some((taken.clone(), b"answer".to_vec()));
            store
                .record_provisioning(&first, &l, &ev("prov"))
                .await
                .unwrap();
            let (b0, i0, _) = store.batch_stats();
            // 120 at once: two pre-generated answers for each of 40 contracts, 40 plain
            // installations (one superseding "dd" after a grace period, one "ee" with none,
            // each with an event), one reusing serial "dd", one reusing a taken idempotency key.
            let mut tasks = Vec::new();
            for i in 0..120u32 {
                let s = store.clone();
                let serial = if i == 90 {
                    "dd".to_string()
                } else {
                    format!("{:04x}", 0x1000 + i)
                };
                let mut c = cert("root", &serial);
                c.der = serial.clone().into_bytes();
                let mut l = if i < 80 {
                    link(&format!("k{}", i / 2), true, serial.as_bytes())
                } else {
                    let mut l = link(&format!("p{i}"), false, b"x");
                    l.events.push(OutboxEvent::new(
                        "oem.contract.updated",
                        "urn:iso:15118:2:2013:MsgDef",
                        serde_json::json!({ "i": i }),
                        Audience::All,
                        0,
                    ));
                    l
                };
                if i == 85 {
                    l.supersedes = vec![("root".into(), "dd".into())];
                    l.supersede_at = i64::MAX / 4;
                }
                if i == 86 {
                    // Due already (the store's clock is the system's): revoked at once.
                    l.supersedes = vec![("root".into(), "ee".into())];
                    l.supersede_at = 5;
                }
                if i == 95 {
                    l.idempotency = Some((taken.clone(), b"other".to_vec()));
                }
                tasks.push(tokio::spawn(async move {
                    let mut e = ev(&format!("c{i}"));
                    e.events = l.events.clone();
                    (serial, s.record_provisioning(&c, &l, &e).await)
                }));
            }
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            for (i, (_, r)) in results.iter().enumerate() {
                match (i, r) {
                    (90, Err(StoreError::DuplicateSerial { .. })) => {}
                    (95, Err(StoreError::IdempotencyKeyTaken(_))) => {}
                    (90 | 95, r) => panic!("{backend:?}: provisioning {i} should fail: {r:?}"),
                    (_, Err(e)) => panic!("{backend:?}: provisioning {i}: {e}"),
                    _ => {}
                }
            }
            // Of each contract's two answers, whichever committed second replaced the first
            // and revoked its certificate, and it is the one kept.
            for k in 0..40 {
                let (a, b) = (&results[2 * k], &results[2 * k + 1]);
                let (kept, gone) = match (&a.1, &b.1) {
                    (Ok(r), Ok(none)) if r.len() == 1 && none.is_empty() => (&a.0, &r[0]),
                    (Ok(none), Ok(r)) if r.len() == 1 && none.is_empty() => (&b.0, &r[0]),
                    other => panic!("{backend:?}: contract k{k}: {other:?}"),
                };
                let other = if kept == &a.0 { &b.0 } else { &a.0 };
                assert_eq!(
                    (gone.issuer_id.as_str(), &gone.serial_hex),
                    ("root", other),
                    "{backend:?}"
                );
                let c = store.get_cert("root", other).await.unwrap().unwrap();
                assert_eq!(
                    (c.status, c.revocation_reason),
                    (CertStatus::Revoked, Some(RevocationReason::Superseded)),
                    "{backend:?}: contract k{k}'s replaced answer"
                );
                let p = store
                    .get_pregenerated(&format!("k{k}"), "iso15118-2")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(&p.serial_hex, kept, "{backend:?}: contract k{k}");
                assert_eq!(p.exi, kept.as_bytes(), "{backend:?}: contract k{k}");
            }
            let (b1, i1, largest) = store.batch_stats();
            assert_eq!(
                i1 - i0,
                120,
                "{backend:?}: all went through the group commit"
            );
            assert!(
                b1 - b0 < 120 && largest > 1,
                "{backend:?}: provisionings shared transactions ({} batches, largest {largest})",
                b1 - b0
            );
            // Each provisioning is linked to its contract, the refused ones are not.
            for i in [0u32, 79, 80, 119] {
                let serial = format!("{:04x}", 0x1000 + i);
                let contract = if i < 80 {
                    format!("k{}", i / 2)
                } else {
                    format!("p{i}")
                };
                assert_eq!(
                    store
                        .contract_of_certificate("root", &serial)
                        .await
                        .unwrap(),
                    Some(contract),
                    "{backend:?}: {serial}"
                );
            }
            assert_eq!(
                store
                    .contract_of_certificate("root", &format!("{:04x}", 0x1000 + 95))
                    .await
                    .unwrap(),
                None,
                "{backend:?}: the refused provisioning left no link"
            );
            assert_eq!(
                store
                    .due_cert_supersessions(i64::MAX / 2, 10)
                    .await
                    .unwrap(),
                vec![("root".to_string(), "dd".to_string())],
                "{backend:?}: the supersession with a grace period was scheduled, not the other"
            );
            let dd = store.get_cert("root", "dd").await.unwrap().unwrap();
            assert_eq!(dd.status, CertStatus::Valid, "{backend:?}");
            let ee = store.get_cert("root", "ee").await.unwrap().unwrap();
            assert_eq!(
                (ee.status, ee.revocation_reason),
                (CertStatus::Revoked, Some(RevocationReason::Superseded)),
                "{backend:?}: superseded with no grace period: revoked in the transaction"
            );
            let revoked_ee = results[86].1.as_ref().unwrap();
            assert_eq!(
                revoked_ee
                    .iter()
                    .map(|r| r.serial_hex.as_str())
                    .collect::<Vec<_>>(),
                ["ee"],
                "{backend:?}"
            );
            // Every revocation bumped the OCSP epoch (replicas learn of it): 40 + "ee".
            assert_eq!(store.ocsp_epoch().await.unwrap(), 41, "{backend:?}");
            // The taken key still answers with the first call's answer.
            let kept = store
                .idempotent_result("api:c1", "k-taken")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(kept.serial_hex, "0fff", "{backend:?}");
            // A second wave without failures (batches written whole, not item by item),
            // each with an event too.
            let mut tasks = Vec::new();
            for i in 0..30u32 {
                let s = store.clone();
                let serial = format!("{:04x}", 0x2000 + i);
                let mut c = cert("root", &serial);
                c.der = serial.clone().into_bytes();
                let mut l = link(&format!("q{i}"), true, b"y");
                l.events.push(OutboxEvent::new(
                    "oem.contract.updated",
                    "urn:iso:15118:2:2013:MsgDef",
                    serde_json::json!({ "q": i }),
                    Audience::All,
                    0,
                ));
                tasks.push(tokio::spawn(async move {
                    let mut e = ev(&format!("q{i}"));
                    e.events = l.events.clone();
                    s.record_provisioning(&c, &l, &e).await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap(), Vec::new(), "{backend:?}");
            }
            // 38 events committed in the first wave (80..120 without 90 and 95) and 30 in the
            // second, each with one delivery.
            let deliveries = store.webhook_deliveries("ep1", 1000).await.unwrap();
            assert_eq!(deliveries.len(), 38 + 30, "{backend:?}");
            let r = store.audit_verify().await.unwrap();
            assert!(r.ok(), "{backend:?}: {r:?}");
            // ca, first, second, client, endpoint, prov + 118 + 41 revocations + 30: the
            // refused ones left no audit entry.
            assert_eq!(r.entries, 6 + 118 + 41 + 30, "{backend:?}");
        });
    }
}

/// What a new installation supersedes is the contract's current certificates: valid, of the
/// schema, not superseded already (scheduled, or revoked with its successor's commit), whatever
/// the contract's history.
#[test]
fn an_installation_supersedes_the_contracts_current_certificates_only() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("mo", "01"), Some(&ca("mo")), &ev("ca"), None)
                .await
                .unwrap();
            let provision = |serial: &str, supersedes: &[&str], at: i64| {
                let mut c = cert("mo", serial);
                c.profile = "contract".into();
                c.der = serial.as_bytes().to_vec();
                let mut l = link("k", false, b"a");
                l.request = format!("req-{serial}").into_bytes();
                l.supersedes = supersedes
                    .iter()
                    .map(|s| ("mo".to_string(), s.to_string()))
                    .collect();
                l.supersede_at = at;
                let store = store.clone();
                async move {
                    store
                        .record_provisioning(&c, &l, &ev("prov"))
                        .await
                        .unwrap()
                }
            };
            let current = || {
                let store = store.clone();
                async move {
                    store
                        .contract_certificates_to_supersede("k", "contract", 1)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|(_, s)| s)
                        .collect::<Vec<_>>()
                }
            };
            provision("0a", &[], 0).await;
            assert_eq!(current().await, ["0a"], "{backend:?}");
            // Superseded after a grace period: scheduled, no longer current.
            provision("0b", &["0a"], i64::MAX / 4).await;
            assert_eq!(current().await, ["0b"], "{backend:?}");
            // Superseded with no grace period: revoked in the commit.
            let revoked = provision("0c", &["0b"], 0).await;
            assert_eq!(revoked.len(), 1, "{backend:?}");
            assert_eq!(current().await, ["0c"], "{backend:?}");
            // Two current ones (the second did not see the first), one of the other schema,
            // then one revoked on its own.
            provision("0d", &[], 0).await;
            let mut c = cert("mo", "0e");
            c.profile = "contract-20".into();
            c.der = b"0e".to_vec();
            let mut l = link("k", false, b"a");
            l.request = b"req-0e".to_vec();
            l.schema_version = "iso15118-20";
            store
                .record_provisioning(&c, &l, &ev("prov"))
                .await
                .unwrap();
            let mut both = current().await;
            both.sort();
            assert_eq!(both, ["0c", "0d"], "{backend:?}");
            store
                .revoke(
                    "mo",
                    "0d",
                    RevocationReason::KeyCompromise,
                    1,
                    &ev("revoke"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(current().await, ["0c"], "{backend:?}");
            // Scheduled from elsewhere (a delivered pre-generated answer): not current either.
            assert!(
                store
                    .schedule_supersession(("mo", "0c"), ("mo", "0f"), i64::MAX / 4, &ev("s"))
                    .await
                    .unwrap(),
                "{backend:?}"
            );
            assert_eq!(current().await, Vec::<String>::new(), "{backend:?}");
        });
    }
}

/// Run `statements` on the database at `url` outside the store (what an older version left).
async fn raw_execute(url: &str, statements: &[&str]) {
    use sqlx::Connection;
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(*s))
                .execute(&mut c)
                .await
                .unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(*s))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

/// `(serial_hex, closed_at)` of every provisioning, read outside the store.
async fn provisionings_closed(url: &str) -> Vec<(String, Option<i64>)> {
    use sqlx::Connection;
    let sql = "SELECT serial_hex, closed_at FROM provisionings ORDER BY serial_hex";
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// Migration 0020 closes the provisionings of certificates revoked before it ran (the first
/// installation after an upgrade does not walk them); current ones stay open.
#[test]
fn migration_0020_closes_the_provisionings_of_certificates_revoked_before() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("mo", "01"), Some(&ca("mo")), &ev("ca"), None)
                .await
                .unwrap();
            for serial in ["0a", "0b"] {
                let mut c = cert("mo", serial);
                c.profile = "contract".into();
                c.der = serial.as_bytes().to_vec();
                let mut l = link("k", false, b"a");
                l.request = format!("req-{serial}").into_bytes();
                store
                    .record_provisioning(&c, &l, &ev("prov"))
                    .await
                    .unwrap();
            }
            store
                .revoke(
                    "mo",
                    "0a",
                    RevocationReason::KeyCompromise,
                    7,
                    &ev("revoke"),
                    None,
                )
                .await
                .unwrap();
            store.close().await;
            // The database as the version before 0020 left it.
            raw_execute(
                &env.db_url,
                &[
                    "DROP INDEX provisionings_contract",
                    "ALTER TABLE provisionings DROP COLUMN closed_at",
                    "CREATE INDEX provisionings_contract ON provisionings (contract_id)",
                    "DELETE FROM _sqlx_migrations WHERE version = 20",
                ],
            )
            .await;
            connect(&env.db_url).await.close().await;
            assert_eq!(
                provisionings_closed(&env.db_url).await,
                [("0a".to_string(), Some(7)), ("0b".to_string(), None)],
                "{backend:?}"
            );
        });
    }
}

#[test]
fn contracts_to_regenerate_after_a_compromise_are_found_page_by_page() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            for id in ["mo", "mo2"] {
                store
                    .record_issuance(&cert(id, "01"), Some(&ca(id)), &ev("ca"), None)
                    .await
                    .unwrap();
            }
            // Contract k{i}: (pooled, issuer of its certificate, its pre-generated data's
            // issuer, active).
            let cases: [(bool, &str, Option<&str>, bool); 8] = [
                (true, "mo", None, true),        // k0: due
                (true, "mo2", None, true),       // k1: not signed by the stopped key
                (false, "mo", None, true),       // k2: no pooled vehicle
                (true, "mo", Some("mo2"), true), // k3: regenerated already
                (true, "mo", Some("mo"), true),  // k4: due (its data is under the stopped key)
                (true, "mo", None, false),       // k5: cancelled
                (true, "mo", None, true),        // k6: due
                (true, "mo", None, true),        // k7: due
            ];
            for (i, (pooled, issuer, pregen, active)) in cases.iter().enumerate() {
                let pcid = format!("WP0ZZZ99ZTS39{i:04}");
                store
                    .insert_contract(
                        &ContractRecord {
                            id: format!("k{i}"),
                            emaid: format!("DE8AA12345678{i}"),
                            pcid: pcid.clone(),
                            tenant: "DE8AA".into(),
                            issuer_id: None,
                            organization: None,
                            valid_from: None,
                            valid_to: None,
                            grace_seconds: 0,
                            status: if *active {
                                ContractStatus::Active
                            } else {
                                ContractStatus::Cancelled
                            },
                            created_by: "test".into(),
                            created_at: 0,
                            cancelled_at: None,
                        },
                        &ev("contract"),
                    )
                    .await
                    .unwrap();
                if *pooled {
                    store
                        .put_prov_cert(
                            &ProvCertRecord {
                                pcid,
                                tenant: "WP0".into(),
                                namespace: "urn:iso:15118:2:2013:MsgDef".into(),
                                leaf_der: vec![0x30, 0x00],
                                sub_ca1_der: None,
                                sub_ca2_der: None,
                                root_der: vec![0x30, 0x00],
                                uploaded_by: "test".into(),
                                uploaded_at: 0,
                            },
                            &ev("pool"),
                        )
                        .await
                        .unwrap();
                }
                let mut c = cert(issuer, &format!("{:04x}", 0x100 + i));
                c.der = format!("k{i}").into_bytes();
                store
                    .record_provisioning(&c, &link(&format!("k{i}"), false, b"a"), &ev("prov"))
                    .await
                    .unwrap();
                if let Some(g) = pregen {
                    let mut c = cert(g, &format!("{:04x}", 0x200 + i));
                    c.der = format!("g{i}").into_bytes();
                    store
                        .record_provisioning(&c, &link(&format!("k{i}"), true, b"g"), &ev("pregen"))
                        .await
                        .unwrap();
                }
            }
            store
                .compromise_stop(
                    &[("mo".to_string(), 1)],
                    RevocationReason::KeyCompromise,
                    "mo",
                    &ev("stop"),
                )
                .await
                .unwrap();
            // Pages of 3 contracts: a page can hold no due contract at all and the walk goes on.
            let mut due = Vec::new();
            let mut after = String::new();
            let mut pages = 0;
            loop {
                let (page, next) = store
                    .compromise_contracts_due("mo", &after, 3)
                    .await
                    .unwrap();
                pages += 1;
                due.extend(page.into_iter().map(|c| c.contract_id));
                match next {
                    Some(n) => after = n,
                    None => break,
                }
            }
            assert_eq!(due, ["k0", "k4", "k6", "k7"], "{backend:?}");
            // The confirmation page's count (a resumed response counts the stopped keys) is
            // the same: k3, regenerated already, is not counted again.
            let preview = store
                .compromise_preview(&[("mo".to_string(), 1)])
                .await
                .unwrap();
            assert_eq!(preview.contracts, 4, "{backend:?}");
            // 7 active contracts: k0-k2, k3 k4 k6, and k7 (a short page: the end).
            assert_eq!(pages, 3, "{backend:?}");
            assert_eq!(
                store.compromise_contracts_regenerated("mo").await.unwrap(),
                1,
                "{backend:?}: k3"
            );
        });
    }
}

#[test]
fn a_job_lease_has_one_holder_until_it_runs_out_or_is_given_up() {
    for backend in backends() {
        let env = Env::new(backend);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            let t = 1_000_000i64;
            assert!(
                store.job_lease("j", "a", t, 1000).await.unwrap(),
                "{backend:?}"
            );
            assert!(
                !store.job_lease("j", "b", t + 10, 1000).await.unwrap(),
                "{backend:?}: held by a"
            );
            assert!(
                store.job_lease("j", "a", t + 500, 1000).await.unwrap(),
                "{backend:?}: a renews"
            );
            assert!(
                !store.job_lease("j", "b", t + 1400, 1000).await.unwrap(),
                "{backend:?}: renewed until t+1500"
            );
            assert!(
                store.job_lease("j", "b", t + 1501, 1000).await.unwrap(),
                "{backend:?}: ran out, b takes it"
            );
            assert!(
                !store.job_lease("j", "a", t + 1600, 1000).await.unwrap(),
                "{backend:?}"
            );
            assert!(
                store.job_lease("other", "a", t + 1600, 1000).await.unwrap(),
                "{backend:?}: per job"
            );
            store.release_job_lease("j", "b").await.unwrap();
            assert!(
                store.job_lease("j", "a", t + 1700, 1000).await.unwrap(),
                "{backend:?}: given up"
            );
        });
    }
}

/// The store's safety net under the front ends' character checks (issue 20): a NUL in a text
/// parameter, which PostgreSQL cannot hold, is the caller's error (400 `invalid_characters`),
/// not a store outage (503 `store_unavailable`), and the store still works afterwards.
#[test]
fn a_nul_in_a_text_value_is_a_bad_request_not_an_outage() {
    if !backend_ready(Backend::Postgres) {
        return;
    }
    let env = Env::new(Backend::Postgres);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = connect(&env.db_url).await;
        let err = store
            .list_certs(&CertFilter {
                emaid: Some("DE8AA\0".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_characters", "{err}");
        assert_eq!(err.kind(), pnc_pki::error::ErrorKind::BadRequest, "{err}");
        let err = store
            .audit(&AuditEvent::new(
                "test",
                "x.y",
                "a\0b",
                serde_json::json!({}),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_characters", "{err}");
        // In JSON details a NUL is escaped (`\u0000`) and stored as text: harmless.
        store.audit(&ev("after")).await.unwrap();
        assert!(store.audit_verify().await.unwrap().ok());
    });
}

/// A certificate with a comma in a subject value: its DER, and the subject text as it was
/// stored before names were RFC 4514-escaped.
fn comma_certificate(dir: &std::path::Path) -> (Vec<u8>, String) {
    let key = dir.join("comma.key");
    let pem = dir.join("comma.pem");
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        "/O=EVIL CSO, O=ACME CSO/CN=CS-0001",
        "-days",
        "2",
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    (
        read_pem_der(&pem),
        "O=EVIL CSO, O=ACME CSO, CN=CS-0001".to_string(),
    )
}

/// Subjects stored before escaping (listed by migration 0015) are re-rendered once from their
/// DER, so exact subject lookups (supersession) find old and new rows alike; text search
/// ignores the escaping backslashes.
#[test]
fn legacy_subjects_are_rewritten_once_and_found_however_typed() {
    for backend in backends() {
        let env = Env::new(backend);
        let (der, legacy) = comma_certificate(env.path());
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = connect(&env.db_url).await;
            store
                .record_issuance(&cert("root", "01"), Some(&ca("root")), &ev("ca"), None)
                .await
                .unwrap();
            let mut old = cert("root", "02");
            old.subject = legacy.clone();
            old.der = der.clone();
            store
                .record_issuance(&old, None, &ev("old"), None)
                .await
                .unwrap();
            // What migration 0015 does for rows that exist when it runs.
            let q =
                "INSERT INTO subject_rewrites (tbl, k1, k2) VALUES ('certificates', 'root', '02')";
            match backend {
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
                    sqlx::query(q).execute(&pool).await.unwrap();
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&env.db_url).await.unwrap();
                    sqlx::query(q).execute(&pool).await.unwrap();
                }
            }
            let escaped = r"O=EVIL CSO\, O=ACME CSO, CN=CS-0001";
            let by_subject = |s: &str| CertFilter {
                subject: Some(s.to_string()),
                ..Default::default()
            };
            assert!(
                store
                    .list_certs(&by_subject(escaped))
                    .await
                    .unwrap()
                    .is_empty()
            );
            let render = |d: &[u8]| {
                pnc_pki::x509::ParsedCert::from_der(d)
                    .ok()
                    .map(|c| c.subject_string())
            };
            assert_eq!(store.rewrite_legacy_subjects(&render).await.unwrap(), 1);
            let found = store.list_certs(&by_subject(escaped)).await.unwrap();
            assert_eq!(found.len(), 1, "{backend:?}");
            assert_eq!(found[0].serial_hex, "02");
            // Done once: nothing left to rewrite.
            assert_eq!(store.rewrite_legacy_subjects(&render).await.unwrap(), 0);
            for typed in ["evil cso, o=acme", r"EVIL CSO\, O=ACME"] {
                let hits = store
                    .list_certs(&CertFilter {
                        text: Some(typed.into()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(hits.len(), 1, "{backend:?} {typed}");
            }
        });
    }
}
