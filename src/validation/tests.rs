//! Table tests of the engine: small PKIs made with OpenSSL in the test.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

use super::*;
use crate::policy::profile::Profiles;

const NOW: i64 = 1_800_000_000;

fn key() -> PKey<Private> {
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Root,
    Ca(Option<u32>),
    Leaf { ka: bool },
    NoExtensions,
}

struct Made {
    cert: X509,
    key: PKey<Private>,
}

impl Made {
    fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }
}

/// A certificate: subject `pairs`, signed by `issuer` (self-signed without), with key ids.
fn make(
    pairs: &[(&str, &str)],
    issuer: Option<&Made>,
    kind: Kind,
    validity: (i64, i64),
    key_ids: bool,
) -> Made {
    let k = key();
    let mut n = X509NameBuilder::new().unwrap();
    for (t, v) in pairs {
        n.append_entry_by_text(t, v).unwrap();
    }
    let n = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial
        .rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(issuer.map_or(&n, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&k).unwrap();
    b.set_not_before(&Asn1Time::from_unix(validity.0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(validity.1).unwrap())
        .unwrap();
    match kind {
        Kind::Root | Kind::Ca(_) => {
            let mut bc = BasicConstraints::new();
            bc.critical().ca();
            if let Kind::Ca(Some(p)) = kind {
                bc.pathlen(p);
            }
            b.append_extension(bc.build().unwrap()).unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        Kind::Leaf { ka } => {
            b.append_extension(BasicConstraints::new().critical().build().unwrap())
                .unwrap();
            let mut ku = KeyUsage::new();
            ku.critical().digital_signature();
            if ka {
                ku.key_agreement();
            }
            b.append_extension(ku.build().unwrap()).unwrap();
        }
        Kind::NoExtensions => {}
    }
    if key_ids {
        let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
        let ski = SubjectKeyIdentifier::new().build(&ctx).unwrap();
        b.append_extension(ski).unwrap();
        if issuer.is_some() {
            let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&ctx)
                .unwrap();
            b.append_extension(aki).unwrap();
        }
    }
    b.sign(issuer.map_or(&k, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Made {
        cert: b.build(),
        key: k,
    }
}

fn valid() -> (i64, i64) {
    (NOW - 86_400, NOW + 365 * 86_400)
}

/// An OEM PKI: root → sub-CA 1 → sub-CA 2, and a provisioning certificate for `pcid`.
struct Pki {
    root: Made,
    sub1: Made,
    sub2: Made,
}

fn oem_pki(name: &str, key_ids: bool) -> Pki {
    let root = make(
        &[("O", name), ("DC", "OEM"), ("CN", &format!("{name} Root"))],
        None,
        Kind::Root,
        valid(),
        key_ids,
    );
    let sub1 = make(
        &[("O", name), ("CN", &format!("{name} Sub1"))],
        Some(&root),
        Kind::Ca(Some(1)),
        valid(),
        key_ids,
    );
    let sub2 = make(
        &[("O", name), ("CN", &format!("{name} Sub2"))],
        Some(&sub1),
        Kind::Ca(Some(0)),
        valid(),
        key_ids,
    );
    Pki { root, sub1, sub2 }
}

const PCID: &str = "WP0ZZZ99ZTS392124";

fn vehicle(under: &Made) -> Made {
    make(
        &[("O", "Test OEM"), ("DC", "OEM"), ("CN", PCID)],
        Some(under),
        Kind::Leaf { ka: true },
        valid(),
        true,
    )
}

fn profiles() -> Profiles {
    Profiles::builtin().unwrap()
}

fn run(
    trust: &TrustStore,
    leaf: &[u8],
    presented: &[Vec<u8>],
    role: Role,
) -> Result<ValidPath, Failure> {
    validate(
        trust,
        &profiles(),
        &Request {
            leaf,
            presented,
            role,
            at: NOW,
        },
    )
}

fn trust_oem(root: &Made) -> TrustStore {
    let mut t = TrustStore::new();
    t.add_anchor(&root.der(), AnchorKind::Oem, None);
    t
}

#[test]
fn a_good_chain_validates_and_names_its_anchor() {
    let pki = oem_pki("Test OEM", true);
    let car = vehicle(&pki.sub2);
    let p = run(
        &trust_oem(&pki.root),
        &car.der(),
        &[pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap();
    assert_eq!(p.certs.len(), 4);
    assert_eq!(p.anchor().der, pki.root.der());
    assert_eq!(p.anchor_kind(), Some(AnchorKind::Oem));
    assert!(p.issued_by_us().is_empty());
    assert_eq!(p.issued_by_others().len(), 3);
}

#[test]
fn every_candidate_is_tried_two_roots_with_one_name() {
    // A re-keyed OEM root: same name, new key. Vehicles under either validate.
    let old = oem_pki("Test OEM", true);
    let mut new = oem_pki("Test OEM", true);
    assert_eq!(
        old.root.cert.subject_name().to_der().unwrap(),
        new.root.cert.subject_name().to_der().unwrap()
    );
    let mut t = trust_oem(&old.root);
    t.add_anchor(&new.root.der(), AnchorKind::Oem, None);
    for pki in [&old, &new] {
        let car = vehicle(&pki.sub2);
        run(
            &t,
            &car.der(),
            &[pki.sub2.der(), pki.sub1.der()],
            Role::OemProvisioning,
        )
        .unwrap();
    }
    // Without key identifiers too (candidates are then told apart by signature alone).
    let old = oem_pki("Plain OEM", false);
    new = oem_pki("Plain OEM", false);
    let mut t = trust_oem(&old.root);
    t.add_anchor(&new.root.der(), AnchorKind::Oem, None);
    for pki in [&new, &old] {
        let car = make(
            &[("O", "Plain OEM"), ("CN", PCID)],
            Some(&pki.sub2),
            Kind::Leaf { ka: true },
            valid(),
            false,
        );
        run(
            &t,
            &car.der(),
            &[pki.sub1.der(), pki.sub2.der()],
            Role::OemProvisioning,
        )
        .unwrap();
    }
}

#[test]
fn a_certificate_signed_by_an_impostor_ca_with_our_name_is_refused() {
    // Without key identifiers, candidates are found by name and the signature tells them apart.
    let real = oem_pki("Test OEM", false);
    let fake = oem_pki("Test OEM", false); // same names, other keys, untrusted root
    let car = make(
        &[("O", "Test OEM"), ("CN", PCID)],
        Some(&fake.sub2),
        Kind::Leaf { ka: true },
        valid(),
        false,
    );
    let t = trust_oem(&real.root);
    for presented in [
        vec![fake.sub2.der(), fake.sub1.der()],
        vec![real.sub2.der(), real.sub1.der()],
    ] {
        let e = run(&t, &car.der(), &presented, Role::OemProvisioning).unwrap_err();
        assert!(matches!(e, Failure::BadSignature(_)), "{e:?}");
        assert_eq!(e.iso2(), IsoCode::SignatureError);
        assert_eq!(e.ocpp_status(), "SignatureError");
    }
    // With key identifiers, an impostor's key id points at no trusted key: no path.
    let real = oem_pki("Test OEM", true);
    let fake = oem_pki("Test OEM", true);
    let car = vehicle(&fake.sub2);
    let t = trust_oem(&real.root);
    for presented in [
        vec![fake.sub2.der(), fake.sub1.der()],
        vec![real.sub2.der(), real.sub1.der()],
    ] {
        let e = run(&t, &car.der(), &presented, Role::OemProvisioning).unwrap_err();
        assert!(
            matches!(e, Failure::NoPath(_) | Failure::BadSignature(_)),
            "{e:?}"
        );
    }
}

#[test]
fn no_issuer_is_no_path() {
    let pki = oem_pki("Test OEM", true);
    let other = oem_pki("Other OEM", true);
    let car = vehicle(&pki.sub2);
    let e = run(
        &trust_oem(&other.root),
        &car.der(),
        &[pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::NoPath(_)), "{e:?}");
    assert_eq!(e.code(), "untrusted_chain");
    assert_eq!(e.iso2(), IsoCode::CertChainError);
    assert_eq!(e.ocpp_status(), "CertChainError");
    // Missing intermediates are no path either.
    let e = run(
        &trust_oem(&pki.root),
        &car.der(),
        &[pki.sub2.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::NoPath(_)), "{e:?}");
}

#[test]
fn expiry_of_leaf_and_sub_ca_and_not_yet_valid() {
    let pki = oem_pki("Test OEM", true);
    let t = trust_oem(&pki.root);
    let old = make(
        &[("O", "Test OEM"), ("CN", PCID)],
        Some(&pki.sub2),
        Kind::Leaf { ka: true },
        (NOW - 10 * 86_400, NOW - 86_400),
        true,
    );
    let e = run(
        &t,
        &old.der(),
        &[pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Expired(_)), "{e:?}");
    assert_eq!(e.iso2(), IsoCode::CertificateExpired);
    assert_eq!(e.ocpp_status(), "CertificateExpired");
    let future = make(
        &[("O", "Test OEM"), ("CN", PCID)],
        Some(&pki.sub2),
        Kind::Leaf { ka: true },
        (NOW + 86_400, NOW + 10 * 86_400),
        true,
    );
    let e = run(
        &t,
        &future.der(),
        &[pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::NotYetValid(_)), "{e:?}");
    // An expired sub-CA.
    let sub2 = make(
        &[("O", "Test OEM"), ("CN", "Test OEM Sub2")],
        Some(&pki.sub1),
        Kind::Ca(Some(0)),
        (NOW - 10 * 86_400, NOW - 86_400),
        true,
    );
    let car = vehicle(&sub2);
    let e = run(
        &t,
        &car.der(),
        &[sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Expired(_)), "{e:?}");
}

#[test]
fn basic_constraints_path_length_and_leaf_issuers_are_constraints() {
    let pki = oem_pki("Test OEM", true);
    let t = trust_oem(&pki.root);
    // A leaf (cA=FALSE) used as an issuer.
    let car = vehicle(&pki.sub2);
    let grandchild = make(
        &[("O", "Test OEM"), ("CN", "WP0ZZZ99ZTS392125")],
        Some(&car),
        Kind::Leaf { ka: true },
        valid(),
        true,
    );
    let e = run(
        &t,
        &grandchild.der(),
        &[car.der(), pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Constraint(_)), "{e:?}");
    // Sub-CA 2 (pathLen 0) issuing another sub-CA.
    let sub3 = make(
        &[("O", "Test OEM"), ("CN", "Test OEM Sub3")],
        Some(&pki.sub2),
        Kind::Ca(None),
        valid(),
        true,
    );
    let car = vehicle(&sub3);
    let e = run(
        &t,
        &car.der(),
        &[sub3.der(), pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Constraint(_)), "{e:?}");
    // An issuer with no extensions at all (a v1-style CA) cannot issue.
    let bare = make(
        &[("O", "Test OEM"), ("CN", "Bare")],
        Some(&pki.sub1),
        Kind::NoExtensions,
        valid(),
        false,
    );
    let car = make(
        &[("O", "Test OEM"), ("CN", PCID)],
        Some(&bare),
        Kind::Leaf { ka: true },
        valid(),
        false,
    );
    let e = run(
        &t,
        &car.der(),
        &[bare.der(), pki.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Constraint(_)), "{e:?}");
}

#[test]
fn roles_check_the_leaf_form() {
    let pki = oem_pki("Test OEM", true);
    let t = trust_oem(&pki.root);
    let subs = [pki.sub2.der(), pki.sub1.der()];
    let cases: Vec<(&str, Made)> = vec![
        (
            "SECC leaf with DC=CPO",
            make(
                &[("O", "CPO"), ("DC", "CPO"), ("CN", "DEABCE12345678901")],
                Some(&pki.sub2),
                Kind::Leaf { ka: true },
                valid(),
                true,
            ),
        ),
        (
            "CN is not a PCID",
            make(
                &[("O", "Test OEM"), ("CN", "not a pcid")],
                Some(&pki.sub2),
                Kind::Leaf { ka: true },
                valid(),
                true,
            ),
        ),
        (
            "no keyAgreement",
            make(
                &[("O", "Test OEM"), ("CN", PCID)],
                Some(&pki.sub2),
                Kind::Leaf { ka: false },
                valid(),
                true,
            ),
        ),
        (
            "a CA",
            make(
                &[("O", "Test OEM"), ("CN", PCID)],
                Some(&pki.sub2),
                Kind::Ca(Some(0)),
                valid(),
                true,
            ),
        ),
    ];
    for (what, c) in cases {
        let e = run(&t, &c.der(), &subs, Role::OemProvisioning).unwrap_err();
        assert!(matches!(e, Failure::Role(_)), "{what}: {e:?}");
        assert_eq!(e.code(), "certificate_wrong_role", "{what}");
    }
    // The same vehicle is not a contract certificate (wrong CN form, and an OEM root).
    let car = vehicle(&pki.sub2);
    let e = run(&t, &car.der(), &subs, Role::Contract).unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
}

#[test]
fn roles_check_the_root_and_sub_ca_kinds() {
    // Our V2G root with our CPO sub-CAs: a SECC leaf is fine there; a "vehicle" certificate
    // under the same CPO sub-CA is refused although it chains to a V2G root.
    let v2g = make(
        &[("O", "Us"), ("DC", "V2G"), ("CN", "V2G Root")],
        None,
        Kind::Root,
        valid(),
        true,
    );
    let cpo1 = make(
        &[("O", "Us"), ("CN", "CPO Sub1")],
        Some(&v2g),
        Kind::Ca(Some(1)),
        valid(),
        true,
    );
    let cpo2 = make(
        &[("O", "Us"), ("CN", "CPO Sub2")],
        Some(&cpo1),
        Kind::Ca(Some(0)),
        valid(),
        true,
    );
    let mut t = TrustStore::new();
    t.add_anchor(&v2g.der(), AnchorKind::V2g, Some("v2g-root".into()));
    t.add_own_ca(&cpo1.der(), "cpo-sub-ca-1", "cpo-sub-ca-1");
    t.add_own_ca(&cpo2.der(), "cpo-sub-ca-2", "cpo-sub-ca-2");
    // No DC on the leaf, a CN that is both an EVSE ID and a PCID.
    let both = make(
        &[("O", "X"), ("CN", "DEABCE12345678901")],
        Some(&cpo2),
        Kind::Leaf { ka: true },
        valid(),
        true,
    );
    let p = run(&t, &both.der(), &[], Role::SeccLeaf).unwrap();
    assert_eq!(p.issued_by_us().len(), 1);
    assert_eq!(p.issued_by_us()[0].1, "cpo-sub-ca-2");
    let e = run(&t, &both.der(), &[], Role::OemProvisioning).unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
    // Presenting our CPO sub-CAs' own bytes as "OEM sub-CAs" changes nothing.
    let e = run(
        &t,
        &both.der(),
        &[cpo2.der(), cpo1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
    // Another PKI's sub-CA with another family's DC.
    let oem = oem_pki("Test OEM", true);
    let mo_dc = make(
        &[("O", "X"), ("DC", "CPO"), ("CN", "Sub2")],
        Some(&oem.sub1),
        Kind::Ca(Some(0)),
        valid(),
        true,
    );
    let car = vehicle(&mo_dc);
    let e = run(
        &trust_oem(&oem.root),
        &car.der(),
        &[mo_dc.der(), oem.sub1.der()],
        Role::OemProvisioning,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
    // A contract under an OEM root: the root kind is wrong.
    let contract = make(
        &[("O", "MO"), ("CN", "DE8AAC123456780")],
        Some(&oem.sub2),
        Kind::Leaf { ka: true },
        valid(),
        true,
    );
    let e = run(
        &trust_oem(&oem.root),
        &contract.der(),
        &[oem.sub2.der(), oem.sub1.der()],
        Role::Contract,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
}

#[test]
fn ocpp_roles_check_extended_key_usage() {
    let root = make(
        &[("O", "Us"), ("CN", "CSMS Root")],
        None,
        Kind::Root,
        valid(),
        true,
    );
    let cso = make(
        &[("O", "Us"), ("CN", "CSO Sub")],
        Some(&root),
        Kind::Ca(Some(0)),
        valid(),
        true,
    );
    let mut t = TrustStore::new();
    t.add_anchor(&root.der(), AnchorKind::Csms, Some("csms-root".into()));
    t.add_own_ca(&cso.der(), "cso-sub-ca", "cso-sub-ca");
    let mk = |eku: &str| {
        let k = key();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("O", "ACME CSO").unwrap();
        n.append_entry_by_text("CN", "CS-0001").unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(cso.cert.subject_name()).unwrap();
        b.set_pubkey(&k).unwrap();
        b.set_not_before(&Asn1Time::from_unix(valid().0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(valid().1).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        let mut e = ExtendedKeyUsage::new();
        if eku == "client" {
            e.client_auth();
        } else {
            e.server_auth();
        }
        b.append_extension(e.build().unwrap()).unwrap();
        b.sign(&cso.key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    };
    run(&t, &mk("client"), &[], Role::ChargingStation).unwrap();
    run(&t, &mk("server"), &[], Role::CsmsServer).unwrap();
    let e = run(&t, &mk("server"), &[], Role::ChargingStation).unwrap_err();
    assert!(matches!(e, Failure::Role(_)), "{e:?}");
    // And not as an ISO 15118 certificate (wrong root kind or CN).
    assert!(run(&t, &mk("client"), &[], Role::SeccLeaf).is_err());
}

#[test]
fn malformed_and_unknown_critical_extensions() {
    let e = run(
        &TrustStore::new(),
        b"\x30\x03\x02\x01\x01",
        &[],
        Role::Contract,
    )
    .unwrap_err();
    assert!(matches!(e, Failure::Malformed(_)), "{e:?}");
    assert_eq!(e.code(), "certificate_invalid");
    // A tampered signature byte.
    let pki = oem_pki("Test OEM", true);
    let mut der = vehicle(&pki.sub2).der();
    let n = der.len();
    der[n - 3] ^= 0x01;
    let e = run(
        &trust_oem(&pki.root),
        &der,
        &[pki.sub2.der(), pki.sub1.der()],
        Role::OemProvisioning,
    );
    assert!(
        matches!(
            e,
            Err(Failure::BadSignature(_)) | Err(Failure::Malformed(_))
        ),
        "{e:?}"
    );
}

#[test]
fn failure_mapping_table() {
    let cases = [
        (
            Failure::Malformed(String::new()),
            "certificate_invalid",
            IsoCode::CertChainError,
            "CertChainError",
        ),
        (
            Failure::NoPath(String::new()),
            "untrusted_chain",
            IsoCode::CertChainError,
            "CertChainError",
        ),
        (
            Failure::BadSignature(String::new()),
            "certificate_signature_invalid",
            IsoCode::SignatureError,
            "SignatureError",
        ),
        (
            Failure::Constraint(String::new()),
            "certificate_constraint_violated",
            IsoCode::CertChainError,
            "CertChainError",
        ),
        (
            Failure::Role(String::new()),
            "certificate_wrong_role",
            IsoCode::CertChainError,
            "CertChainError",
        ),
        (
            Failure::Expired(String::new()),
            "certificate_expired",
            IsoCode::CertificateExpired,
            "CertificateExpired",
        ),
        (
            Failure::NotYetValid(String::new()),
            "certificate_expired",
            IsoCode::CertificateExpired,
            "CertificateExpired",
        ),
        (
            Failure::Revoked(String::new()),
            "certificate_revoked",
            IsoCode::CertificateRevoked,
            "CertificateRevoked",
        ),
        (
            Failure::Unrecorded(String::new()),
            "certificate_unknown",
            IsoCode::CertChainError,
            "CertChainError",
        ),
    ];
    for (f, code, iso, ocpp) in cases {
        assert_eq!(f.code(), code, "{f:?}");
        assert_eq!(f.iso2(), iso, "{f:?}");
        assert_eq!(f.ocpp_status(), ocpp, "{f:?}");
    }
}
