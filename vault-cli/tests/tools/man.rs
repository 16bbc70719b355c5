//! `ravi man` renders with `man -l`.

use std::process::Command;

use crate::common::*;

pub fn man_page_renders() {
    let env = Env::empty();
    let page = env.work.join("ravi.1");
    std::fs::write(&page, env.run(&["man"]).ok().stdout).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("End-to-end-encrypted vaults"), "{text}");
    assert!(text.contains("secrets"), "{text}");
    // (line-filling notes about long option names are typography, not errors)
    let warnings = String::from_utf8_lossy(&out.stderr);
    let real: Vec<&str> = warnings
        .lines()
        .filter(|l| !l.contains("cannot adjust line") && !l.contains("cannot break line"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(real.is_empty(), "{warnings}");
}
