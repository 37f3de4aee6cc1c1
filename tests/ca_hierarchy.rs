//! Bootstrap a hierarchy on a real SoftHSM2 token with each store, then check every chain with the
//! openssl CLI and every profile field with an X.509 parser.

mod common;

use common::*;
use der::Decode;
use x509_cert::Certificate;

const FAMILIES: &[(&str, &[&str])] = &[
    ("v2g-root", &["cpo-sub-ca-1", "cpo-sub-ca-2"]),
    ("v2g-root", &["cps-sub-ca-1", "cps-sub-ca-2", "cps-leaf"]),
    ("mo-root", &["mo-sub-ca-1", "mo-sub-ca-2"]),
    ("oem-root", &["oem-sub-ca-1", "oem-sub-ca-2"]),
];

fn verify_chain(dir: &std::path::Path, root: &str, chain: &[&str], suffix: &str) {
    let root = dir.join(format!("{root}{suffix}.pem"));
    for i in 0..chain.len() {
        let leaf = dir.join(format!("{}{suffix}.pem", chain[i]));
        let untrusted: Vec<u8> = chain[..i]
            .iter()
            .flat_map(|c| std::fs::read(dir.join(format!("{c}{suffix}.pem"))).unwrap())
            .collect();
        let u = dir.join("untrusted.pem");
        std::fs::write(&u, &untrusted).unwrap();
        let mut args = vec!["verify", "-x509_strict", "-CAfile", root.to_str().unwrap()];
        if i > 0 {
            args.extend(["-untrusted", u.to_str().unwrap()]);
        }
        args.push(leaf.to_str().unwrap());
        let (ok, out) = openssl(&args);
        assert!(
            ok && out.contains(": OK"),
            "openssl verify {}: {out}",
            leaf.display()
        );
    }
}

#[test]
fn bootstrap_verifies_with_openssl_and_is_idempotent() {
    for backend in backends() {
        let env = Env::new(backend);
        let first = env.init();
        assert!(
            first.contains("v2g-root") && first.contains("created"),
            "{first}"
        );
        let second = env.init();
        assert!(
            second.contains("nothing to do"),
            "second init changed something: {second}"
        );
        let out = env.export();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for base in [
            "v2g-root",
            "cpo-sub-ca-1",
            "cpo-sub-ca-2",
            "cps-sub-ca-1",
            "cps-sub-ca-2",
            "cps-leaf",
            "mo-root",
            "mo-sub-ca-1",
            "mo-sub-ca-2",
            "oem-root",
            "oem-sub-ca-1",
            "oem-sub-ca-2",
        ] {
            for suffix in ["", "-20"] {
                assert!(
                    names.contains(&format!("{base}{suffix}.pem")),
                    "{base}{suffix} missing: {names:?}"
                );
            }
        }
        for suffix in ["", "-20"] {
            for (root, chain) in FAMILIES {
                verify_chain(&out, root, chain, suffix);
            }
        }
        // The same hierarchy seen by `tree`.
        let tree = env.ok(&["tree"]);
        assert!(
            tree.contains("└── cpo-sub-ca-2") || tree.contains("└── cpo-sub-ca-1"),
            "{tree}"
        );
        assert!(tree.contains("ec-p521"), "{tree}");
        // The audit chain covers everything init did.
        let audit = env.ok(&["audit", "verify"]);
        assert!(audit.contains("audit log OK"), "{audit}");
    }
}

fn ext(c: &Certificate, oid: der::asn1::ObjectIdentifier) -> Option<&x509_cert::ext::Extension> {
    c.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == oid)
}

#[test]
fn profile_fields_are_exactly_as_specified() {
    use const_oid::db::rfc5280 as o;
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
    let env = Env::new(Backend::Sqlite);
    env.init();
    let out = env.export();
    // (file, ca, pathLen, DC, required KU bits, AIA expected, max DER)
    // (file, cA, pathLen, DC, keyUsage bits, AIA expected)
    type Case<'a> = (
        &'a str,
        bool,
        Option<u8>,
        Option<&'a str>,
        &'a [KeyUsages],
        bool,
    );
    let cases: &[Case] = &[
        (
            "v2g-root",
            true,
            None,
            Some("V2G"),
            &[KeyUsages::KeyCertSign, KeyUsages::CRLSign],
            false,
        ),
        (
            "cpo-sub-ca-1",
            true,
            Some(1),
            None,
            &[KeyUsages::KeyCertSign, KeyUsages::CRLSign],
            true,
        ),
        (
            "cpo-sub-ca-2",
            true,
            Some(0),
            None,
            &[KeyUsages::KeyCertSign, KeyUsages::CRLSign],
            true,
        ),
        (
            "mo-root",
            true,
            None,
            Some("MO"),
            &[KeyUsages::KeyCertSign, KeyUsages::CRLSign],
            false,
        ),
        (
            "mo-sub-ca-2",
            true,
            Some(0),
            None,
            &[
                KeyUsages::DigitalSignature,
                KeyUsages::NonRepudiation,
                KeyUsages::KeyCertSign,
                KeyUsages::CRLSign,
            ],
            true,
        ),
        (
            "oem-root",
            true,
            None,
            Some("OEM"),
            &[KeyUsages::KeyCertSign, KeyUsages::CRLSign],
            false,
        ),
        (
            "cps-leaf",
            false,
            None,
            Some("CPS"),
            &[KeyUsages::DigitalSignature],
            true,
        ),
    ];
    for suffix in ["", "-20"] {
        for (name, is_ca, path_len, dc, ku_bits, aia) in cases {
            let der = read_pem_der(&out.join(format!("{name}{suffix}.pem")));
            let max = if suffix.is_empty() { 800 } else { 1600 };
            assert!(der.len() <= max, "{name}{suffix} is {} bytes", der.len());
            let c = Certificate::from_der(&der).unwrap();
            let tbs = c.tbs_certificate();
            assert_eq!(tbs.version(), x509_cert::certificate::Version::V3);
            let (sig_oid, curve) = if suffix.is_empty() {
                (
                    const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
                    const_oid::db::rfc5912::SECP_256_R_1,
                )
            } else {
                (
                    const_oid::db::rfc5912::ECDSA_WITH_SHA_512,
                    const_oid::db::rfc5912::SECP_521_R_1,
                )
            };
            assert_eq!(c.signature_algorithm().oid, sig_oid, "{name}{suffix}");
            assert!(c.signature_algorithm().parameters.is_none());
            let spki = tbs.subject_public_key_info();
            let got_curve: der::asn1::ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .decode_as()
                .unwrap();
            assert_eq!(got_curve, curve, "{name}{suffix}");
            // Serial: positive, at least 64 bits.
            let serial = tbs.serial_number().as_bytes();
            assert!(
                serial.len() >= 8 && serial[0] & 0x80 == 0,
                "{name}: serial {serial:?}"
            );
            let bc_ext = ext(&c, o::ID_CE_BASIC_CONSTRAINTS).expect("basicConstraints");
            assert!(bc_ext.critical, "{name}: basicConstraints must be critical");
            let bc = BasicConstraints::from_der(bc_ext.extn_value.as_bytes()).unwrap();
            assert_eq!(bc.ca, *is_ca, "{name}");
            assert_eq!(bc.path_len_constraint, *path_len, "{name}");
            let ku_ext = ext(&c, o::ID_CE_KEY_USAGE).expect("keyUsage");
            assert!(ku_ext.critical, "{name}: keyUsage must be critical");
            let ku = KeyUsage::from_der(ku_ext.extn_value.as_bytes()).unwrap();
            let mut want = der::flagset::FlagSet::<KeyUsages>::default();
            for b in *ku_bits {
                want |= *b;
            }
            assert_eq!(ku.0, want, "{name}{suffix}: keyUsage");
            assert!(
                ext(&c, o::ID_CE_SUBJECT_KEY_IDENTIFIER).is_some(),
                "{name}: SKI"
            );
            assert!(
                ext(&c, o::ID_CE_AUTHORITY_KEY_IDENTIFIER).is_some(),
                "{name}: AKI"
            );
            assert!(
                ext(&c, o::ID_CE_EXT_KEY_USAGE).is_none(),
                "{name}: no EKU on ISO 15118 certificates"
            );
            match (aia, ext(&c, o::ID_PE_AUTHORITY_INFO_ACCESS)) {
                (true, Some(e)) => {
                    let a = x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(
                        e.extn_value.as_bytes(),
                    )
                    .unwrap();
                    assert_eq!(a.0.len(), 1, "{name}: exactly one AIA entry");
                    assert_eq!(
                        a.0[0].access_method,
                        der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1")
                    );
                    let x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) =
                        &a.0[0].access_location
                    else {
                        panic!("{name}: AIA location is not a URI")
                    };
                    assert_eq!(u.as_str(), format!("{}/ocsp", env.public_url));
                }
                (false, None) => {}
                (want, got) => panic!("{name}{suffix}: AIA expected {want}, got {}", got.is_some()),
            }
            let dcs: Vec<String> = tbs
                .subject()
                .iter()
                .filter(|a| a.oid == const_oid::db::rfc4519::DC)
                .map(|a| {
                    a.value
                        .decode_as::<der::asn1::Ia5StringRef>()
                        .unwrap()
                        .as_str()
                        .to_string()
                })
                .collect();
            if let Some(dc) = dc {
                assert_eq!(dcs, vec![dc.to_string()], "{name}{suffix}: DC");
            }
            // Issuer DN bytes are the parent's subject bytes, verbatim.
            if *is_ca && path_len.is_none() {
                assert_eq!(tbs.issuer(), tbs.subject(), "{name}: root is self-issued");
            }
        }
    }
}
