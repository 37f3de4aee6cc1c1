//! A sub-CA signed by an offline root we do not hold (as real V2G roots are): `csr` makes the key in
//! the token, the root's owner (here: the openssl CLI) signs, `import-ca` records it, and the rest
//! of the hierarchy grows under it.

mod common;

use common::*;

#[test]
fn external_root_signs_our_sub_ca() {
    let env = Env::new(Backend::Sqlite);
    let p = |n: &str| env.path().join(n).display().to_string();
    // A deployment with no CAs yet: token and database only.
    std::fs::write(p("empty.toml"), "ocsp_signers = false\n").unwrap();
    let out = env.ok(&["init", "--config", &p("empty.toml")]);
    assert!(out.contains("created token"), "{out}");

    // The offline root, made and kept by someone else.
    let (ok, t) = openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        &p("root.key"),
    ]);
    assert!(ok, "{t}");
    let (ok, t) = openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &p("root.key"),
        "-subj",
        "/C=DE/O=Offline PKI/DC=V2G/CN=Offline V2G Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        &p("root.pem"),
    ]);
    assert!(ok, "{t}");

    let out = env.ok(&[
        "csr",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--subject",
        "C=DE, O=Example CPO, CN=Example CPO Sub1",
        "--out",
        &p("sub1.csr"),
    ]);
    assert!(out.contains("key held in the token"), "{out}");
    let (ok, t) = openssl(&["req", "-in", &p("sub1.csr"), "-verify", "-noout"]);
    assert!(ok && t.contains("OK"), "our CSR verifies with openssl: {t}");
    // Asking again reuses the same key (no orphan keys from retries).
    env.ok(&[
        "csr",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--subject",
        "C=DE, O=Example CPO, CN=Example CPO Sub1",
        "--out",
        &p("sub1b.csr"),
    ]);
    let (_, k1) = openssl(&["req", "-in", &p("sub1.csr"), "-noout", "-pubkey"]);
    let (_, k2) = openssl(&["req", "-in", &p("sub1b.csr"), "-noout", "-pubkey"]);
    assert_eq!(k1, k2);

    let sign = |ext: &str, out: &str| {
        std::fs::write(p("ext.cnf"), ext).unwrap();
        let (ok, t) = openssl(&[
            "x509",
            "-req",
            "-in",
            &p("sub1.csr"),
            "-CA",
            &p("root.pem"),
            "-CAkey",
            &p("root.key"),
            "-CAcreateserial",
            "-days",
            "1000",
            "-sha256",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p(out),
        ]);
        assert!(ok, "{t}");
    };
    sign(
        "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        "sub1.pem",
    );
    sign(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
        "sub1-wrong.pem",
    );

    let e = env.fails(&[
        "import-ca",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1.pem"),
    ]);
    assert!(e.contains("--issuer-chain"), "{e}");
    let e = env.fails(&[
        "import-ca",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1-wrong.pem"),
        "--issuer-chain",
        &p("root.pem"),
    ]);
    assert!(e.contains("do not match profile"), "{e}");
    let e = env.fails(&[
        "import-ca",
        "--id",
        "other",
        "--profile",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1.pem"),
        "--issuer-chain",
        &p("root.pem"),
    ]);
    assert!(e.contains("no key for CA 'other'"), "{e}");
    let out = env.ok(&[
        "import-ca",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1.pem"),
        "--issuer-chain",
        &p("root.pem"),
    ]);
    assert!(out.contains("imported"), "{out}");

    // Grow the hierarchy under the imported CA and issue a charger certificate.
    std::fs::write(
        p("more.toml"),
        "ocsp_signers = true\n[[ca]]\nid = \"cpo-sub-ca-2\"\nprofile = \"cpo-sub-ca-2\"\nsubject = \"C=DE, O=Example CPO, CN=Example CPO Sub2\"\nparent = \"cpo-sub-ca-1\"\n",
    )
    .unwrap();
    let out = env.ok(&["init", "--config", &p("more.toml")]);
    assert!(
        out.contains("cpo-sub-ca-2") && out.contains("created"),
        "{out}"
    );
    let csr = env.openssl_csr(
        "secc",
        "prime256v1",
        "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
    );
    env.ok(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        &p("secc.pem"),
        "--chain",
    ]);
    // secc.pem holds leaf, sub-CA 2 and sub-CA 1 (the root is never sent).
    let (ok, t) = openssl(&[
        "verify",
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("secc.pem"),
        &p("secc.pem"),
    ]);
    assert!(ok && t.contains(": OK"), "{t}");
    let chain = std::fs::read_to_string(p("secc.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3, "{chain}");

    // Rollover of the externally signed CA: we cannot sign its new certificate, its owner does.
    let e = env.fails(&["ca", "rollover", "--ca", "cpo-sub-ca-1"]);
    assert!(e.contains("--csr-out"), "{e}");
    let out = env.ok(&[
        "ca",
        "rollover",
        "--ca",
        "cpo-sub-ca-1",
        "--csr-out",
        &p("sub1.csr"),
    ]);
    assert!(out.contains("key held in the token"), "{out}");
    let (ok, t) = openssl(&[
        "req",
        "-in",
        &p("sub1.csr"),
        "-verify",
        "-noout",
        "-subject",
    ]);
    assert!(ok && t.contains("Example CPO Sub1"), "{t}");
    let (_, k3) = openssl(&["req", "-in", &p("sub1.csr"), "-noout", "-pubkey"]);
    assert_ne!(k3, k1, "a new key");
    sign(
        "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        "sub1-next.pem",
    );
    // The old certificate is not one for the new key.
    let e = env.fails(&[
        "ca",
        "rollover",
        "--ca",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1.pem"),
    ]);
    assert!(e.contains("not the new key"), "{e}");
    let out = env.ok(&[
        "ca",
        "rollover",
        "--ca",
        "cpo-sub-ca-1",
        "--cert",
        &p("sub1-next.pem"),
    ]);
    assert!(out.contains("key generation 2"), "{out}");
    // cpo-sub-ca-2 was signed by the old key: its leaves still chain through the old
    // certificate, which the service hands out with them.
    env.ok(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        &p("secc2.pem"),
        "--chain",
    ]);
    let (ok, t) = openssl(&[
        "verify",
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("secc2.pem"),
        &p("secc2.pem"),
    ]);
    assert!(ok && t.contains(": OK"), "{t}");
    // Rolling cpo-sub-ca-2 over too puts it under the new key of cpo-sub-ca-1.
    env.ok(&["ca", "rollover", "--ca", "cpo-sub-ca-2"]);
    env.ok(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        &p("secc3.pem"),
        "--chain",
    ]);
    let (ok, t) = openssl(&[
        "verify",
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("secc3.pem"),
        &p("secc3.pem"),
    ]);
    assert!(ok && t.contains(": OK"), "{t}");
    // Each chain carries the certificate of the key that signed the one below it.
    let body = |f: &str| {
        let t = std::fs::read_to_string(p(f)).unwrap();
        t.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let (secc2, secc3) = (body("secc2.pem"), body("secc3.pem"));
    assert!(secc2.contains(&body("sub1.pem")) && !secc2.contains(&body("sub1-next.pem")));
    assert!(secc3.contains(&body("sub1-next.pem")) && !secc3.contains(&body("sub1.pem")));
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}
