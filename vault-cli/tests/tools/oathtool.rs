//! TOTP codes cross-checked against oathtool.

use crate::common::*;
use data_encoding::BASE32_NOPAD;

/// A tiny deterministic generator (SplitMix64) so the cross-check is the
/// same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// 240 random secrets × times × SHA1/256/512 × 6/8 digits against oathtool,
/// an independent implementation (`.ci/run` installs it).
pub fn cross_check_with_oathtool() {
    let (env, _) = Env::with_identity("xcheck");
    let mut rng = SplitMix(0x5EED_2026);
    let mut cases = Vec::new();
    for i in 0..240 {
        let len = 10 + (rng.next() % 55) as usize; // 80 to 512 bits
        let secret: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let alg = ["SHA1", "SHA256", "SHA512"][i % 3];
        let digits = if (i / 3) % 2 == 0 { 6 } else { 8 };
        let period = [30, 60, 15][(rng.next() % 3) as usize];
        let t = rng.next() % 4_000_000_000;
        let name = format!("x{i}");
        env.run(&[
            "totp",
            "add",
            &name,
            "--secret",
            &b32(&secret),
            "--algorithm",
            alg,
            "--digits",
            &digits.to_string(),
            "--period",
            &period.to_string(),
        ])
        .ok();
        cases.push((name, secret, alg, digits, period, t));
    }
    for (name, secret, alg, digits, period, t) in cases {
        let ours = env
            .run(&["totp", "code", &name, "--at", &t.to_string(), "--json"])
            .ok()
            .json();
        let theirs = std::process::Command::new("oathtool")
            .arg(format!("--totp={alg}"))
            .arg(format!("--digits={digits}"))
            .arg(format!("--time-step-size={period}s"))
            .arg(format!("--now=@{t}"))
            .arg("-b")
            .arg(b32(&secret))
            .output()
            .unwrap();
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        assert_eq!(
            ours["code"].as_str().unwrap(),
            String::from_utf8_lossy(&theirs.stdout).trim(),
            "{name} {alg} {digits} {period} t={t}"
        );
    }
}

fn b32(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}
