//! HTTPS against the real binary: a certificate generated with `rcgen` is
//! verified by a rustls client; HTTP/2 and HTTP/1.1 are both negotiated;
//! replacing the certificate files on disk is seen by new connections while
//! an established connection keeps working; mTLS refuses clients without a
//! certificate from the configured CA; and a real Prometheus remote-writes
//! over HTTPS with basic auth, its user name as tenant.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const DEADLINE: Duration = Duration::from_secs(20);

/// A CA and a server (or client) certificate it signed, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, name.to_string());
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// `cairn serve` over HTTPS; killed on drop.
struct TlsCairn {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for TlsCairn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsCairn {
    /// `extra_tls` is appended inside `server.tls`; `extra_yaml` after it.
    fn start(dir: &Path, extra_tls: &str, extra_yaml: &str) -> TlsCairn {
        let config = dir.join("cairn.yaml");
        std::fs::write(
            &config,
            format!(
                "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    reload_interval: 200ms\n{extra_tls}{extra_yaml}",
                dir.join("cert.pem").display(),
                dir.join("key.pem").display()
            )
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args([
                "--http.listen-address",
                "127.0.0.1:0",
                "--log.level",
                "info",
            ])
            .arg("--storage.path")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&log);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("cairn listening") {
                    if let Some(address) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                    {
                        let _ = tx.send(address.to_string());
                    }
                }
                writer.lock().unwrap().push(line);
            }
        });
        let address = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("cairn did not start: {}", log.lock().unwrap().join("\n")));
        TlsCairn {
            child,
            address,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.address, path)
    }

    fn wait_ready(&self, client: &reqwest::blocking::Client) {
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(self.url("/ready")).send() {
                if response.status().as_u16() == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "not ready: {}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn client_trusting(ca_pem: &str) -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
}

fn write_pki(dir: &Path, pki: &Pki) {
    // Key first, then certificate: a reload in between sees a mismatched
    // pair, fails, and keeps the old certificate until the next change.
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
}

#[test]
fn https_is_verified_negotiates_h2_and_http1_and_rotates_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    let second = pki("second");
    write_pki(dir.path(), &first);
    let cairn = TlsCairn::start(dir.path(), "", "");
    let trusts_first = client_trusting(&first.ca_pem).build().unwrap();
    cairn.wait_ready(&trusts_first);

    let h2 = trusts_first
        .get(cairn.url("/api/v1/labels"))
        .header("X-Scope-OrgID", "a")
        .send()
        .unwrap();
    assert_eq!(h2.status().as_u16(), 200);
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let http1 = client_trusting(&first.ca_pem).http1_only().build().unwrap();
    let response = http1.get(cairn.url("/ready")).send().unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status().as_u16(), 200);

    // Plain HTTP on the TLS port does not get an answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://{}/ready", cairn.address))
        .timeout(Duration::from_secs(5))
        .send();
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    // A client trusting only the second CA is refused until rotation.
    let trusts_second = || client_trusting(&second.ca_pem).build().unwrap();
    assert!(trusts_second().get(cairn.url("/ready")).send().is_err());

    write_pki(dir.path(), &second);
    let started = Instant::now();
    loop {
        // A fresh client each time: a new connection, a new handshake.
        if trusts_second().get(cairn.url("/ready")).send().is_ok() {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "rotation not picked up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The established HTTP/2 connection of the first client is still up.
    let still = trusts_first.get(cairn.url("/ready")).send().unwrap();
    assert_eq!(still.status().as_u16(), 200);
    // A new connection trusting only the first CA is now refused.
    assert!(client_trusting(&first.ca_pem)
        .build()
        .unwrap()
        .get(cairn.url("/ready"))
        .send()
        .is_err());
    assert!(cairn
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("TLS certificate reloaded")));
}

#[test]
fn mtls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki("server");
    let clients = pki("clients");
    let strangers = pki("strangers");
    write_pki(dir.path(), &server);
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &clients.ca_pem).unwrap();
    let cairn = TlsCairn::start(
        dir.path(),
        &format!("    client_ca_file: {}\n", ca_file.display()),
        "",
    );
    let identity = |p: &Pki| {
        reqwest::Identity::from_pem(format!("{}{}", p.cert_pem, p.key_pem).as_bytes()).unwrap()
    };
    let good = client_trusting(&server.ca_pem)
        .identity(identity(&clients))
        .build()
        .unwrap();
    cairn.wait_ready(&good);
    let no_cert = client_trusting(&server.ca_pem).build().unwrap();
    assert!(no_cert
        .get(cairn.url("/ready"))
        .send()
        .and_then(|r| r.error_for_status())
        .is_err());
    let wrong_ca = client_trusting(&server.ca_pem)
        .identity(identity(&strangers))
        .build()
        .unwrap();
    assert!(wrong_ca
        .get(cairn.url("/ready"))
        .send()
        .and_then(|r| r.error_for_status())
        .is_err());
}

/// Debian's Prometheus 2.42 does not send `remote_write.headers`
/// (prometheus/prometheus#13030), so the user-as-tenant mode is exactly how
/// such a sender gets its tenant: basic auth over HTTPS, no header.
#[test]
fn real_prometheus_remote_writes_over_https_with_basic_auth_as_its_user_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki("server");
    write_pki(dir.path(), &server);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        format!(
            "users:\n  team-prom:\n    password_hash: '{}'\n    read: [team-prom]\n    write: [team-prom]\n",
            support::cheap_hash("prom-pw")
        ),
    )
    .unwrap();
    let cairn = TlsCairn::start(
        dir.path(),
        "",
        &format!(
            "auth:\n  mode: basic\n  users_file: {}\n  user_as_tenant: true\n",
            users.display()
        ),
    );
    let client = client_trusting(&server.ca_pem).build().unwrap();
    cairn.wait_ready(&client);

    let port = support::free_port();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: https://localhost:{cairn_port}/api/v1/push
    basic_auth:
      username: team-prom
      password: prom-pw
    tls_config:
      ca_file: {ca}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        cairn_port = cairn.address.rsplit(':').next().unwrap(),
        ca = ca_file.display(),
    );
    let _prometheus = support::ChildPrometheus::start(dir.path(), port, &config);

    let started = Instant::now();
    loop {
        let response = client
            .get(cairn.url("/prometheus/api/v1/query"))
            .basic_auth("team-prom", Some("prom-pw"))
            .query(&[("query", r#"up{job="prometheus"}"#)])
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let json: serde_json::Value = response.json().unwrap();
        let result = &json["data"]["result"];
        if result
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["value"][1] == "1")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "Prometheus data never reached Cairn over HTTPS; cairn log:\n{}",
            cairn.log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(dir.path().join("data/tenants/team-prom").exists());
    // Another user-less read is refused; the header for another tenant is 403.
    let response = client
        .get(cairn.url("/api/v1/query"))
        .query(&[("query", "up")])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client
        .get(cairn.url("/api/v1/query"))
        .basic_auth("team-prom", Some("prom-pw"))
        .header("X-Scope-OrgID", "someone-else")
        .query(&[("query", "up")])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
}
