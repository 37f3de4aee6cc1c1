//! Criterion benchmark: decode/encode of typical ISO 15118 certificate
//! messages (the generated -2 CertificateInstallationReq/Res, the Hubject
//! production pair and the -20 pair), plus fragment+digest and SignedInfo.
//!
//! `cargo bench --bench exi`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pnc_pki::exi::{Message, xmldsig};

fn vector(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/exi")
        .join(rel);
    let text = std::fs::read_to_string(&p).expect("vector");
    if rel.ends_with(".json") {
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex")
    } else {
        pnc_pki::exi::from_raw_or_base64(text.as_bytes()).expect("b64")
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "iso2_gen_CertificateInstallationReq",
            "iso15118-2/gen_iso2_CertificateInstallationReq.json",
        ),
        (
            "iso2_gen_CertificateInstallationRes",
            "iso15118-2/gen_iso2_CertificateInstallationRes.json",
        ),
        (
            "iso2_hubject_CertificateInstallationReq",
            "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationReq.b64",
        ),
        (
            "iso2_hubject_CertificateInstallationRes",
            "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationRes.b64",
        ),
        (
            "iso20_gen_CertificateInstallationReq",
            "iso15118-20/gen_iso20_CertificateInstallationReq.json",
        ),
        (
            "iso20_gen_CertificateInstallationRes",
            "iso15118-20/gen_iso20_CertificateInstallationRes.json",
        ),
    ];
    let mut g = c.benchmark_group("exi");
    for (name, rel) in cases {
        let bytes = vector(rel);
        let msg = Message::decode(&bytes, None).expect("decode");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("decode/{name} ({} B)", bytes.len()), |b| {
            b.iter(|| Message::decode(black_box(&bytes), None).expect("decode"))
        });
        g.bench_function(format!("encode/{name} ({} B)", bytes.len()), |b| {
            b.iter(|| black_box(&msg).encode().expect("encode"))
        });
    }
    let res = match Message::decode(
        &vector("iso15118-2/gen_iso2_CertificateInstallationRes.json"),
        None,
    )
    .expect("decode")
    {
        Message::Iso2(m) => m,
        Message::Iso20(_) => unreachable!("iso2 vector"),
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "fragments+digests/iso2_CertificateInstallationRes (4 refs)",
        |b| {
            b.iter(|| {
                let f = black_box(&res).signed_fragments().expect("fragments");
                f.iter()
                    .map(|(_, x)| xmldsig::Suite::EcdsaP256Sha256.digest(x))
                    .collect::<Vec<_>>()
            })
        },
    );
    let si = &res.header.signature.as_ref().expect("sig").signed_info;
    g.bench_function("signed_info_fragment/4 refs", |b| {
        b.iter(|| xmldsig::signed_info_fragment(black_box(si)).expect("si"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
