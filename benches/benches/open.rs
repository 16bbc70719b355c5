//! One `secrets get` on a fresh `Vault::open`, by each credential: the
//! passphrase (Argon2id at the default 64 MiB, t=3, p=4), a session token,
//! and an agent key. The session and agent rows should be a small fraction
//! of the passphrase row.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vault_core::{
    AgentSecretKey, Credential, InitOptions, KdfParams, NewIdentity, Passphrase, SessionToken,
    Vault,
};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    token: String,
    agent: AgentSecretKey,
}

fn fixture(kdf: KdfParams) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.db");
    let pass = Passphrase::new("bench passphrase".into()).expect("passphrase");
    let opts = InitOptions {
        kdf,
        inbox_domain: "bench.example.com".into(),
    };
    let vault = Vault::init(&path, &pass, &opts).expect("init");
    let unlocked = vault.unlock(&pass).expect("unlock");
    let ident = unlocked
        .create_identity(&NewIdentity {
            name: "bench".into(),
            ..Default::default()
        })
        .expect("identity");
    let iv = unlocked.open_identity(&ident).expect("open identity");
    for i in 0..100 {
        iv.set_secret(&format!("KEY_{i}"), &format!("value-{i}").into(), None)
            .expect("set");
    }
    let agent = AgentSecretKey::generate().expect("agent key");
    unlocked
        .grant("bench", &agent.public(), None)
        .expect("grant");
    let token = unlocked
        .create_session(Duration::from_secs(3600))
        .expect("session")
        .token
        .to_text()
        .to_string();
    Fixture {
        _dir: dir,
        path,
        token,
        agent,
    }
}

fn secrets_get(path: &std::path::Path, cred: &Credential) -> String {
    let vault = Vault::open(path).expect("open");
    let ident = vault.find_identity("bench").expect("identity");
    let access = vault.access(cred).expect("access");
    let iv = access.open_identity(&ident).expect("open identity");
    iv.get_secret("KEY_42")
        .expect("get")
        .value
        .expose()
        .to_string()
}

fn open_by_credential(c: &mut Criterion) {
    let f = fixture(KdfParams::DEFAULT);
    let pass = Credential::Passphrase(Passphrase::new("bench passphrase".into()).expect("pass"));
    let session = Credential::Session(SessionToken::parse(&f.token).expect("token"));
    let agent = Credential::Agent(f.agent.clone());

    let mut g = c.benchmark_group("secrets_get_by_credential");
    g.sample_size(10);
    g.bench_function("passphrase_argon2id_64MiB_t3_p4", |b| {
        b.iter(|| black_box(secrets_get(&f.path, &pass)))
    });
    g.finish();

    let mut g = c.benchmark_group("secrets_get_by_credential");
    g.bench_function("session_token", |b| {
        b.iter(|| black_box(secrets_get(&f.path, &session)))
    });
    g.bench_function("agent_key", |b| {
        b.iter(|| black_box(secrets_get(&f.path, &agent)))
    });
    g.finish();
}

criterion_group!(benches, open_by_credential);
criterion_main!(benches);
