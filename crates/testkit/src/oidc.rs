//! A real OpenID Connect provider process for tests: `oauth2-mock-server` (npm), started
//! by `oidc/mock-server.cjs` on localhost at a free port. `.ci/run` installs the package
//! into `target/oidc`; elsewhere [`MockIdp::start`] installs it there on first use, and
//! returns `None` (skip, with a message) only when Node.js is absent outside CI.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The running provider; killed on drop.
pub struct MockIdp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `http://localhost:PORT`.
    pub issuer: String,
}

impl MockIdp {
    pub fn start() -> Option<MockIdp> {
        if Command::new("node").arg("--version").output().is_err() {
            assert!(
                std::env::var("CI").is_err(),
                "Node.js is required in CI for the OpenID Connect tests"
            );
            eprintln!("skipping an OpenID Connect test: Node.js is not installed");
            return None;
        }
        let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let prefix = testkit.join("../../target/oidc");
        let modules = prefix.join("node_modules");
        if !modules.join("oauth2-mock-server").exists() {
            let ok = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg("oauth2-mock-server@7")
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot install oauth2-mock-server into target/oidc");
        }
        let mut child = Command::new("node")
            .arg(testkit.join("oidc/mock-server.cjs"))
            .env("NODE_PATH", &modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut issuer = String::new();
        stdout
            .read_line(&mut issuer)
            .expect("the mock provider prints its issuer");
        assert!(issuer.starts_with("http://localhost:"), "{issuer:?}");
        Some(MockIdp {
            child,
            stdin,
            stdout,
            issuer: issuer.trim().to_owned(),
        })
    }

    /// Sends one command (`sub ID`, `picture URL`, `tamper`, `honest`) and waits for "ok".
    pub fn say(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to the mock provider");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the mock provider");
        assert_eq!(line.trim(), "ok");
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
