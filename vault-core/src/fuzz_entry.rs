//! Entry points that take outside bytes, for the fuzz targets in `fuzz/`
//! and for replaying their corpora under `cargo test`. Each must return
//! normally for every input: a panic is a bug. (The CLI's `config.json`
//! parser has its entry point in the CLI crate.)

use crate::agent::{self, AgentPublicKey, AgentSecretKey, GrantContext};
use crate::envelope::{self, SealContext};
use crate::generator::{GeneratorOptions, generate_password};
use crate::keys::SecretKey;
use crate::session::SessionToken;
use crate::totp::TotpParams;

const KEY: [u8; 32] = [0x42; 32];
const VAULT: [u8; 16] = [0xaa; 16];
const IDENTITY: [u8; 16] = [0xbb; 16];
const RECORD: [u8; 16] = [0xcc; 16];

fn record_ctx() -> SealContext<'static> {
    SealContext::Record {
        vault_id: &VAULT,
        identity_id: &IDENTITY,
        kind: 2,
        record_id: &RECORD,
        epoch: 1,
    }
}

/// Opens arbitrary bytes as a record envelope (either version) under a
/// fixed key, padding checked.
pub fn envelope_open(data: &[u8]) {
    let _ = envelope::open_record(&SecretKey::from_bytes(KEY), &record_ctx(), data);
}

/// Seals the input as a record (Padmé) and opens it again: must give the
/// input back.
pub fn seal_open_roundtrip(data: &[u8]) {
    let key = SecretKey::from_bytes(KEY);
    let Ok(sealed) = envelope::seal_record(&key, &record_ctx(), data, Some(&[7; 24])) else {
        return;
    };
    let opened =
        envelope::open_record(&key, &record_ctx(), &sealed).expect("a fresh envelope opens");
    assert_eq!(&opened[..], data, "round trip changed the data");
}

/// The fixed agent key the grant target opens with.
fn fuzz_agent() -> AgentSecretKey {
    AgentSecretKey::from_seed([0x24; 32])
}

fn grant_ctx() -> GrantContext<'static> {
    GrantContext {
        vault_id: &VAULT,
        identity_id: &IDENTITY,
        grant_id: &RECORD,
        epoch: 1,
        name: "fuzz",
        inbox: "fuzz@example.com",
        phone: "",
    }
}

/// Opens arbitrary bytes as a grant: the first 32 bytes are the ephemeral
/// public key, the rest the wrapped identity key.
pub fn grant_open(data: &[u8]) {
    if data.len() < 32 {
        return;
    }
    let (eph, wrapped) = data.split_at(32);
    let eph: [u8; 32] = eph.try_into().expect("split at 32");
    let _ = agent::unwrap_as_agent(&fuzz_agent(), &grant_ctx(), &eph, wrapped);
}

/// Parses a session token; a parsed token prints back to an equal token.
pub fn session_token(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = SessionToken::parse(s) {
        let again = SessionToken::parse(&t.to_text()).expect("a printed token parses");
        assert_eq!(again.id_text(), t.id_text());
    }
}

/// Parses an agent public key; a parsed key prints back to an equal key.
pub fn agent_public_key(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = AgentPublicKey::parse(s) {
        assert_eq!(AgentPublicKey::parse(&k.to_string()).ok(), Some(k));
    }
}

/// Parses an agent key file.
pub fn agent_key_file(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = AgentSecretKey::parse_file_contents(s);
    }
}

/// Parses an `otpauth://` URI; a parsed URI exports and re-parses to the
/// same parameters, and makes a code.
pub fn otpauth_uri(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = TotpParams::from_uri(s) {
        let again = TotpParams::from_uri(&p.to_uri()).expect("an exported URI parses");
        assert_eq!(again, p, "URI round trip changed the parameters");
        p.code_at(59).expect("valid parameters make a code");
    }
}

/// Generator options from bytes: length from the first two bytes, flags
/// from the third, excluded characters from the rest. A password that is
/// generated has the asked length and only allowed characters.
pub fn generator_options(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let opts = GeneratorOptions {
        length: usize::from(u16::from_le_bytes([data[0], data[1]]) % 1100),
        special: data[2] & 1 == 0,
        digits: data[2] & 2 == 0,
        exclude: String::from_utf8_lossy(&data[3..]).into_owned(),
    };
    if let Ok(p) = generate_password(&opts) {
        assert_eq!(p.chars().count(), opts.length);
        assert!(p.chars().all(|c| !opts.exclude.contains(c)));
    }
}

/// Cleans a domain or URL.
pub fn domain(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(d) = crate::names::clean_domain(s)
    {
        assert!(!d.is_empty());
    }
}

/// The fixed owner key the vault-head target verifies with.
fn fuzz_owner() -> crate::signing::OwnerKey {
    crate::signing::OwnerKey::from_seed(&SecretKey::from_bytes([0x0e; 32]))
}

/// The fixed sealer the identity-head target opens with (epoch 2).
fn fuzz_sealer() -> crate::sealer::RecordSealer {
    crate::sealer::RecordSealer::new(
        VAULT,
        "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
        2,
        &SecretKey::from_bytes(KEY),
    )
    .expect("a fixed uuid")
}

/// Parses an owner public key (`raviowner1…`); a parsed key prints back
/// to the same text.
pub fn owner_public_key(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(k) = crate::signing::OwnerPublicKey::parse(s)
    {
        assert_eq!(
            crate::signing::OwnerPublicKey::parse(&k.to_string()).expect("round trip"),
            k
        );
    }
}

/// Opens arbitrary bytes as a vault head signed by a fixed owner key.
pub fn vault_head(data: &[u8]) {
    let _ = crate::vault_head::VaultHead::open(data, &VAULT, &fuzz_owner().public());
}

/// Opens arbitrary bytes as an identity head under a fixed identity key,
/// and the previous key of a window it names (SPEC §4e).
pub fn identity_head(data: &[u8]) {
    let _ = open_identity_head(data);
}

fn open_identity_head(data: &[u8]) -> crate::Result<()> {
    let mut sealer = fuzz_sealer();
    let head = sealer.open_head(data)?;
    sealer.follow(&head)
}

/// A fuzz entry point: takes any bytes, must not panic.
pub type Entry = fn(&[u8]);
/// An acceptance oracle: whether an entry point accepts the bytes.
pub type Check = fn(&[u8]) -> bool;

/// Every entry point by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Entry)] = &[
    ("envelope_open", envelope_open),
    ("seal_open_roundtrip", seal_open_roundtrip),
    ("grant_open", grant_open),
    ("session_token", session_token),
    ("agent_public_key", agent_public_key),
    ("agent_key_file", agent_key_file),
    ("otpauth_uri", otpauth_uri),
    ("generator_options", generator_options),
    ("domain", domain),
    ("owner_public_key", owner_public_key),
    ("vault_head", vault_head),
    ("identity_head", identity_head),
];

/// Whether each entry point *accepts* an input (opens, parses, generates):
/// the oracle for the `ok_` and `fail_` vectors in `tests/data/`.
pub const CHECKS: &[(&str, Check)] = &[
    ("envelope_open", |d| {
        envelope::open_record(&SecretKey::from_bytes(KEY), &record_ctx(), d).is_some()
    }),
    ("grant_open", |d| {
        d.len() >= 32
            && agent::unwrap_as_agent(
                &fuzz_agent(),
                &grant_ctx(),
                &d[..32].try_into().expect("32 bytes"),
                &d[32..],
            )
            .is_some()
    }),
    ("session_token", |d| {
        std::str::from_utf8(d).is_ok_and(|s| SessionToken::parse(s).is_ok())
    }),
    ("agent_public_key", |d| {
        std::str::from_utf8(d).is_ok_and(|s| AgentPublicKey::parse(s).is_ok())
    }),
    ("agent_key_file", |d| {
        std::str::from_utf8(d).is_ok_and(|s| AgentSecretKey::parse_file_contents(s).is_ok())
    }),
    ("otpauth_uri", |d| {
        std::str::from_utf8(d).is_ok_and(|s| TotpParams::from_uri(s).is_ok())
    }),
    ("generator_options", |d| {
        d.len() >= 3
            && generate_password(&GeneratorOptions {
                length: usize::from(u16::from_le_bytes([d[0], d[1]]) % 1100),
                special: d[2] & 1 == 0,
                digits: d[2] & 2 == 0,
                exclude: String::from_utf8_lossy(&d[3..]).into_owned(),
            })
            .is_ok()
    }),
    ("domain", |d| {
        std::str::from_utf8(d).is_ok_and(|s| crate::names::clean_domain(s).is_ok())
    }),
    ("owner_public_key", |d| {
        std::str::from_utf8(d).is_ok_and(|s| crate::signing::OwnerPublicKey::parse(s).is_ok())
    }),
    ("vault_head", |d| {
        crate::vault_head::VaultHead::open(d, &VAULT, &fuzz_owner().public()).is_ok()
    }),
    ("identity_head", |d| open_identity_head(d).is_ok()),
];

/// Valid inputs (and must-fail variants derived from them) that need keys
/// to make: `(target, file name, bytes)`. Written to `tests/data/` by
/// `cargo run -p vault-core --example fuzz_seeds`.
pub fn generated_vectors() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let key = SecretKey::from_bytes(KEY);
    let padded = envelope::pad(b"{\"key\":\"k\",\"value\":\"v\"}").expect("small");
    let env = envelope::seal_with_nonce(&key, &[0x24; 24], &record_ctx(), &padded).expect("seal");
    out.push(("envelope_open", "ok_record.bin".to_string(), env.clone()));
    let mut v = env.clone();
    v[0] = 2;
    out.push(("envelope_open", "fail_version_2.bin".into(), v));
    for (name, i) in [
        ("fail_flipped_nonce.bin", 5),
        ("fail_flipped_ciphertext.bin", 40),
        ("fail_flipped_tag.bin", env.len() - 1),
    ] {
        let mut v = env.clone();
        v[i] ^= 1;
        out.push(("envelope_open", name.into(), v));
    }
    out.push((
        "envelope_open",
        "fail_truncated.bin".into(),
        env[..env.len() - 1].to_vec(),
    ));
    out.push(("envelope_open", "fail_short.bin".into(), env[..40].to_vec()));
    out.push(("envelope_open", "fail_empty.bin".into(), Vec::new()));
    let other = SecretKey::from_bytes([0x43; 32]);
    let wrong =
        envelope::seal_with_nonce(&other, &[0x24; 24], &record_ctx(), &padded).expect("seal");
    out.push(("envelope_open", "fail_wrong_key.bin".into(), wrong));
    let mut bad_pad = padded.to_vec();
    bad_pad[60] = 1;
    let bp = envelope::seal_with_nonce(&key, &[0x25; 24], &record_ctx(), &bad_pad).expect("seal");
    out.push(("envelope_open", "fail_nonzero_padding.bin".into(), bp));
    // Version 0x02 (Padmé): a record as written now; its version byte
    // turned back to 0x01; and an authentic v2 envelope whose padding is a
    // power-of-two bucket rather than the Padmé size.
    let json = [&b"{\"key\":\"k\",\"value\":\""[..], &[b'v'; 42], b"\"}"].concat();
    let v2 = envelope::seal_record(&key, &record_ctx(), &json, Some(&[0x26; 24])).expect("seal");
    out.push(("envelope_open", "ok_record_padme.bin".into(), v2.clone()));
    let mut down = v2.clone();
    down[0] = 1;
    out.push(("envelope_open", "fail_padme_as_version_1.bin".into(), down));
    let ad = record_ctx().associated_data_of(envelope::ENVELOPE_VERSION_PADME);
    let pow2 = envelope::pad(&json).expect("small");
    let ct = crate::primitives::aead_seal(&KEY, &[0x27; 24], &ad, &pow2).expect("seal");
    let wrong_size = [&[envelope::ENVELOPE_VERSION_PADME][..], &[0x27; 24], &ct].concat();
    out.push((
        "envelope_open",
        "fail_padme_bucket_size.bin".into(),
        wrong_size,
    ));

    let ik = SecretKey::from_bytes([0x11; 32]);
    if let Ok((eph, wrapped)) = agent::wrap_to_agent(&fuzz_agent().public(), &grant_ctx(), &ik) {
        let mut g = eph.to_vec();
        g.extend_from_slice(&wrapped);
        out.push(("grant_open", "ok_grant.bin".into(), g.clone()));
        let mut v = g.clone();
        v[3] ^= 1;
        out.push(("grant_open", "fail_flipped_ephemeral.bin".into(), v));
        let mut v = g.clone();
        let last = v.len() - 1;
        v[last] ^= 1;
        out.push(("grant_open", "fail_flipped_tag.bin".into(), v));
        let mut v = vec![0u8; 32];
        v.extend_from_slice(&wrapped);
        out.push(("grant_open", "fail_low_order_ephemeral.bin".into(), v));
        out.push(("grant_open", "fail_short.bin".into(), g[..31].to_vec()));
    }
    if let Ok((eph, wrapped)) = agent::wrap_to_agent(
        &AgentSecretKey::from_seed([0x25; 32]).public(),
        &grant_ctx(),
        &ik,
    ) {
        let mut g = eph.to_vec();
        g.extend_from_slice(&wrapped);
        out.push(("grant_open", "fail_other_agent.bin".into(), g));
    }

    let agent = fuzz_agent();
    out.push((
        "agent_key_file",
        "ok_key_file.txt".into(),
        agent.to_file_contents().as_bytes().to_vec(),
    ));
    out.push((
        "agent_key_file",
        "fail_two_keys.txt".into(),
        format!(
            "{}\n{}\n",
            agent.to_text().as_str(),
            agent.to_text().as_str()
        )
        .into_bytes(),
    ));
    out.push((
        "agent_key_file",
        "fail_public_key.txt".into(),
        agent.public().to_string().into_bytes(),
    ));
    let pk = agent.public().to_string();
    out.push((
        "agent_public_key",
        "ok_public_key.txt".into(),
        pk.clone().into_bytes(),
    ));
    let mut typo: Vec<char> = pk.chars().collect();
    let i = typo.len() - 4;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    out.push((
        "agent_public_key",
        "fail_typo.txt".into(),
        typo.into_iter().collect::<String>().into_bytes(),
    ));
    out.push((
        "agent_public_key",
        "fail_secret_key.txt".into(),
        agent.to_text().as_bytes().to_vec(),
    ));
    let token = SessionToken {
        id: [0x5a; 16],
        key: SecretKey::from_bytes([0x6b; 32]),
    };
    out.push((
        "session_token",
        "ok_token.txt".into(),
        token.to_text().as_bytes().to_vec(),
    ));

    let owner = fuzz_owner();
    let pk = owner.public().to_string();
    out.push((
        "owner_public_key",
        "ok_golden.txt".into(),
        pk.clone().into_bytes(),
    ));
    out.push((
        "owner_public_key",
        "fail_upper_case.txt".into(),
        pk.to_ascii_uppercase().into_bytes(),
    ));
    let mut typo: Vec<char> = pk.chars().collect();
    let i = typo.len() - 5;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    out.push((
        "owner_public_key",
        "fail_typo.txt".into(),
        typo.into_iter().collect::<String>().into_bytes(),
    ));
    if let Ok(hrp) = bech32::Hrp::parse(crate::signing::OWNER_HRP)
        && let Ok(m) = bech32::encode::<bech32::Bech32m>(hrp, owner.public().as_bytes())
    {
        out.push((
            "owner_public_key",
            "fail_bech32m.txt".into(),
            m.into_bytes(),
        ));
    }
    out.push((
        "owner_public_key",
        "fail_agent_key.txt".into(),
        agent.public().to_string().into_bytes(),
    ));

    let mut head = crate::vault_head::VaultHead {
        seq: 7,
        ..Default::default()
    };
    head.identities.insert(IDENTITY, 2);
    head.grants.insert(RECORD, (IDENTITY, [0x24; 32], 2));
    let sealed = head.seal(&VAULT, &owner);
    out.push(("vault_head", "ok_head.bin".into(), sealed.clone()));
    let empty = crate::vault_head::VaultHead::default().seal(&VAULT, &owner);
    out.push(("vault_head", "ok_empty.bin".into(), empty));
    for (name, i) in [
        ("fail_flipped_seq.bin", 7),
        ("fail_flipped_signature.bin", sealed.len() - 1),
    ] {
        let mut v = sealed.clone();
        v[i] ^= 1;
        out.push(("vault_head", name.into(), v));
    }
    out.push((
        "vault_head",
        "fail_truncated.bin".into(),
        sealed[..sealed.len() - 1].to_vec(),
    ));
    out.push(("vault_head", "fail_empty.bin".into(), Vec::new()));
    let other = crate::signing::OwnerKey::from_seed(&SecretKey::from_bytes([0x0f; 32]));
    out.push((
        "vault_head",
        "fail_other_owner.bin".into(),
        head.seal(&VAULT, &other),
    ));

    let sealer = fuzz_sealer();
    let ih = sealer.seal_head(3, &[0x11; 32]);
    out.push(("identity_head", "ok_head.bin".into(), ih.clone()));
    for (name, i) in [
        ("fail_flipped_seq.bin", 7),
        ("fail_flipped_mac.bin", ih.len() - 1),
    ] {
        let mut v = ih.clone();
        v[i] ^= 1;
        out.push(("identity_head", name.into(), v));
    }
    out.push(("identity_head", "fail_short.bin".into(), ih[..75].to_vec()));
    let older = crate::sealer::RecordSealer::new(
        VAULT,
        "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
        1,
        &SecretKey::from_bytes(KEY),
    )
    .expect("a fixed uuid")
    .seal_head(3, &[0x11; 32]);
    out.push(("identity_head", "fail_older_epoch.bin".into(), older));
    // SPEC §4e: a head naming tree slot 1, and one in a rotation's window
    // with the previous key (epoch 1) sealed in it
    let slot = crate::sealer::HeadExt {
        slot: 1,
        window: None,
    };
    out.push((
        "identity_head",
        "ok_slot_1.bin".into(),
        sealer.seal_head_with(4, &[0x11; 32], &slot),
    ));
    let window = crate::sealer::HeadExt {
        slot: 1,
        window: Some(
            sealer
                .window_for(1, &SecretKey::from_bytes([0x0e; 32]))
                .expect("an earlier epoch"),
        ),
    };
    let wh = sealer.seal_head_with(5, &[0x11; 32], &window);
    out.push(("identity_head", "ok_window.bin".into(), wh.clone()));
    let mut stripped = wh[..44].to_vec();
    stripped.extend_from_slice(&wh[wh.len() - 32..]);
    out.push(("identity_head", "fail_window_stripped.bin".into(), stripped));
    // a sealed previous key that does not open, under a valid MAC
    let mut bad_key = window.clone();
    if let Some(w) = bad_key.window.as_mut() {
        w.wrapped[30] ^= 1;
    }
    out.push((
        "identity_head",
        "fail_window_key.bin".into(),
        sealer.seal_head_with(5, &[0x11; 32], &bad_key),
    ));
    out
}
