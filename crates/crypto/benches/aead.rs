//! Encrypt+decrypt of a 200-byte personal field under a subject key, against the raw
//! AES-256-GCM baseline measured in the same run.
//!
//! Run: `cargo bench -p custos-crypto --bench aead -- --warm-up-time 1 --measurement-time 5`
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use custos_crypto::{DataKey, Keyring, MasterKey};
use rand_core::{OsRng, RngCore};

fn bench(c: &mut Criterion) {
    let field = [7u8; 200];
    let mut g = c.benchmark_group("field_200_bytes");
    let raw = Aes256Gcm::new(&[3u8; 32].into());
    let nonce = [0u8; 12];
    g.bench_function("baseline_raw_aes256gcm_encrypt_decrypt", |b| {
        b.iter(|| {
            let ct = raw
                .encrypt(Nonce::from_slice(&nonce), black_box(&field[..]))
                .unwrap();
            black_box(
                raw.decrypt(Nonce::from_slice(&nonce), ct.as_slice())
                    .unwrap(),
            )
        })
    });
    // Diagnostic: the raw cipher doing what `seal`/`open` do besides the AEAD itself (a
    // fresh nonce from the OS per seal, the field binding as associated data), so the gap
    // between the baseline and custos_seal_open can be attributed.
    g.bench_function("diagnostic_raw_aes256gcm_osrng_nonce_aad", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            OsRng.fill_bytes(&mut n);
            let aad = b"subject/field";
            let ct = raw
                .encrypt(
                    Nonce::from_slice(&n),
                    Payload {
                        msg: black_box(&field[..]),
                        aad,
                    },
                )
                .unwrap();
            black_box(
                raw.decrypt(
                    Nonce::from_slice(&n),
                    Payload {
                        msg: ct.as_slice(),
                        aad,
                    },
                )
                .unwrap(),
            )
        })
    });
    let key = DataKey::generate(&mut OsRng);
    let cipher = key.cipher();
    g.bench_function("custos_seal_open", |b| {
        b.iter(|| {
            let sealed = cipher.seal(b"subject/field", black_box(&field), &mut OsRng);
            black_box(cipher.open(b"subject/field", &sealed).unwrap())
        })
    });
    let ring = Keyring::new(&MasterKey::generate(&mut OsRng));
    let wrapped = ring.wrap(&key, b"subject", &mut OsRng);
    g.bench_function("custos_unwrap_key_then_seal_open", |b| {
        b.iter(|| {
            let k = ring.unwrap(&wrapped, b"subject").unwrap();
            let c = k.cipher();
            let sealed = c.seal(b"subject/field", black_box(&field), &mut OsRng);
            black_box(c.open(b"subject/field", &sealed).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
