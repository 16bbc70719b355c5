//! A throwaway PostgreSQL cluster on a private socket directory and port,
//! started by the test and stopped (`pg_ctl stop`) when dropped. The
//! harness reports a test needing it as ignored when the server binaries
//! are missing (and fails it under `CI`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Whether PostgreSQL's server and client binaries are here.
pub fn available() -> bool {
    ["initdb", "pg_ctl", "psql", "pg_dump"]
        .iter()
        .all(|t| find(t).is_some())
}

fn find(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// Runs a PostgreSQL tool as an unprivileged user when we are root
/// (`initdb` and `postgres` refuse to run as root).
fn as_pg_user(bin: &Path) -> Command {
    let root = std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// A new cluster.
    pub fn start() -> Cluster {
        let (initdb, pg_ctl) = (find("initdb").unwrap(), find("pg_ctl").unwrap());
        let dir = tempfile::Builder::new()
            .prefix("ravi-pg")
            .tempdir()
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_pg_user(&initdb)
            .args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "ravi", "--locale=C", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let out = as_pg_user(&pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
                dir.path().display()
            ))
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["start", "-w"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster {
            bin: pg_ctl,
            dir,
            port,
        }
    }

    /// A new empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://ravi@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs one SQL command in database `db` with psql.
    pub fn sql(&self, db: &str, sql: &str) {
        let psql = find("psql").expect("psql");
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ravi",
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump` of a database, as text.
    pub fn dump(&self, name: &str) -> Vec<u8> {
        let pg_dump = find("pg_dump").expect("pg_dump");
        let out = Command::new(pg_dump)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ravi",
                name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_pg_user(&self.bin)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .output();
    }
}
