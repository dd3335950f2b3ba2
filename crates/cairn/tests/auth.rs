//! Authentication end to end against the real binary: mode `none`, mode
//! `basic` with per-tenant read/write rights, `basic` with the user name as
//! tenant, 401 with `WWW-Authenticate`, 403 on a tenant or right the user
//! lacks, users-file reload, and `cairn users add`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{cheap_hash, now_minute_ms, series, Cairn};

fn users_yaml(users: &[(&str, &str, &[&str], &[&str])]) -> String {
    let mut out = String::from("users:\n");
    for (name, password, read, write) in users {
        out.push_str(&format!(
            "  {name}:\n    password_hash: '{}'\n    read: {read:?}\n    write: {write:?}\n",
            cheap_hash(password)
        ));
    }
    out
}

fn push_body() -> Vec<u8> {
    let request = support::write_request(vec![series(
        &[("__name__", "auth_test"), ("job", "t")],
        &[(now_minute_ms(), 1.0)],
    )]);
    cairn_ingest::encode_write_request(&request)
}

struct Call<'a> {
    user: Option<(&'a str, &'a str)>,
    tenant: Option<&'a str>,
}

fn push(cairn: &Cairn, call: Call) -> (u16, String, Option<String>) {
    let mut builder = cairn
        .client()
        .post(cairn.url("/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(push_body());
    if let Some((user, password)) = call.user {
        builder = builder.basic_auth(user, Some(password));
    }
    if let Some(tenant) = call.tenant {
        builder = builder.header("X-Scope-OrgID", tenant);
    }
    let response = builder.send().unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.text().unwrap(), challenge)
}

fn query(cairn: &Cairn, path: &str, call: Call) -> (u16, String) {
    let mut builder = cairn
        .client()
        .get(cairn.url(path))
        .query(&[("query", "auth_test"), ("match[]", "auth_test")]);
    if let Some((user, password)) = call.user {
        builder = builder.basic_auth(user, Some(password));
    }
    if let Some(tenant) = call.tenant {
        builder = builder.header("X-Scope-OrgID", tenant);
    }
    let response = builder.send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn basic_config(users_file: &Path, user_as_tenant: bool) -> String {
    format!(
        "auth:\n  mode: basic\n  users_file: {}\n  user_as_tenant: {user_as_tenant}\n  reload_interval: 200ms\n",
        users_file.display()
    )
}

#[test]
fn mode_none_trusts_the_header_and_ignores_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), "");
    let none = Call {
        user: None,
        tenant: Some("a"),
    };
    assert_eq!(push(&cairn, none).0, 200);
    let (status, body, _) = push(
        &cairn,
        Call {
            user: None,
            tenant: None,
        },
    );
    assert_eq!((status, body.as_str()), (401, "no org id"));
    let with_credentials = Call {
        user: Some(("whoever", "whatever")),
        tenant: Some("a"),
    };
    assert_eq!(query(&cairn, "/api/v1/query", with_credentials).0, 200);
}

#[test]
fn mode_none_with_multitenancy_off_is_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "tenancy:\n  multitenancy_enabled: false\n");
    let call = Call {
        user: None,
        tenant: Some("ignored"),
    };
    assert_eq!(push(&cairn, call).0, 200);
    assert!(data.join("tenants").join("anonymous").exists());
    assert!(!data.join("tenants").join("ignored").exists());
}

#[test]
fn basic_mode_checks_credentials_tenants_and_rights() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        users_yaml(&[
            ("writer-a", "pw-a", &["a"], &["a"]),
            ("reader", "pw-r", &["a", "b"], &[]),
            ("admin", "pw-admin", &["*"], &["*"]),
        ]),
    )
    .unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), &basic_config(&users, false));

    // Wrong password, unknown user, no credentials: 401 with the challenge.
    for user in [Some(("writer-a", "nope")), Some(("nobody", "pw-a")), None] {
        let (status, _, challenge) = push(
            &cairn,
            Call {
                user,
                tenant: Some("a"),
            },
        );
        assert_eq!(status, 401, "{user:?}");
        let challenge = challenge.expect("WWW-Authenticate");
        assert!(
            challenge.starts_with("Basic realm=\"cairn\""),
            "{challenge}"
        );
        let (status, _) = query(
            &cairn,
            "/prometheus/api/v1/query",
            Call {
                user,
                tenant: Some("a"),
            },
        );
        assert_eq!(status, 401, "{user:?}");
    }

    let writer = Some(("writer-a", "pw-a"));
    assert_eq!(
        push(
            &cairn,
            Call {
                user: writer,
                tenant: Some("a")
            }
        )
        .0,
        200
    );
    // A user limited to tenant a: 403 on b, for writes and reads.
    let (status, body, _) = push(
        &cairn,
        Call {
            user: writer,
            tenant: Some("b"),
        },
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not write tenant 'b'"), "{body}");
    for path in [
        "/api/v1/query",
        "/api/v1/series",
        "/prometheus/api/v1/labels",
    ] {
        let (status, body) = query(
            &cairn,
            path,
            Call {
                user: writer,
                tenant: Some("b"),
            },
        );
        assert_eq!(status, 403, "{path}: {body}");
    }
    // Without the header and without user_as_tenant: no org id.
    assert_eq!(
        push(
            &cairn,
            Call {
                user: writer,
                tenant: None
            }
        )
        .0,
        401
    );

    // A read-only user: 403 on push, 200 on reads of its tenants.
    let reader = Some(("reader", "pw-r"));
    let (status, body, _) = push(
        &cairn,
        Call {
            user: reader,
            tenant: Some("a"),
        },
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = query(
        &cairn,
        "/api/v1/query",
        Call {
            user: reader,
            tenant: Some("a"),
        },
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("auth_test"), "{body}");
    let (status, _) = query(
        &cairn,
        "/api/v1/query",
        Call {
            user: reader,
            tenant: Some("c"),
        },
    );
    assert_eq!(status, 403);

    // `*` grants every tenant.
    let admin = Some(("admin", "pw-admin"));
    assert_eq!(
        push(
            &cairn,
            Call {
                user: admin,
                tenant: Some("zzz")
            }
        )
        .0,
        200
    );

    // /ready and /metrics stay open.
    let ready = cairn.client().get(cairn.url("/ready")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[test]
fn basic_mode_with_the_user_name_as_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        users_yaml(&[("team-p", "pw-p", &["team-p"], &["team-p"])]),
    )
    .unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, &basic_config(&users, true));
    let user = Some(("team-p", "pw-p"));
    assert_eq!(push(&cairn, Call { user, tenant: None }).0, 200);
    assert!(data.join("tenants").join("team-p").exists());
    // An empty header is the same as none (Mimir cannot tell them apart).
    assert_eq!(
        push(
            &cairn,
            Call {
                user,
                tenant: Some("")
            }
        )
        .0,
        200
    );
    let (status, body) = query(&cairn, "/api/v1/query", Call { user, tenant: None });
    assert_eq!(status, 200);
    assert!(body.contains("auth_test"), "{body}");
    // The header still wins, and the user's rights still apply.
    assert_eq!(
        push(
            &cairn,
            Call {
                user,
                tenant: Some("other")
            }
        )
        .0,
        403
    );
}

#[test]
fn users_file_changes_are_picked_up_and_a_broken_file_keeps_the_old_users() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, users_yaml(&[("u1", "pw1", &["a"], &["a"])])).unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), &basic_config(&users, false));
    let u1 = Some(("u1", "pw1"));
    let u2 = Some(("u2", "pw2"));
    assert_eq!(
        push(
            &cairn,
            Call {
                user: u1,
                tenant: Some("a")
            }
        )
        .0,
        200
    );
    assert_eq!(
        push(
            &cairn,
            Call {
                user: u2,
                tenant: Some("a")
            }
        )
        .0,
        401
    );

    // A broken file: logged, the old users stay.
    std::fs::write(&users, "users: [broken\n").unwrap();
    wait_for("the broken users file to be reported", || {
        cairn.log().contains("invalid users file")
    });
    assert_eq!(
        push(
            &cairn,
            Call {
                user: u1,
                tenant: Some("a")
            }
        )
        .0,
        200
    );

    // A new file: u2 in, u1 out.
    std::fs::write(&users, users_yaml(&[("u2", "pw2", &["a"], &["a"])])).unwrap();
    wait_for("u2 to be accepted", || {
        push(
            &cairn,
            Call {
                user: u2,
                tenant: Some("a"),
            },
        )
        .0 == 200
    });
    assert_eq!(
        push(
            &cairn,
            Call {
                user: u1,
                tenant: Some("a")
            }
        )
        .0,
        401
    );
}

#[test]
fn cairn_users_add_writes_an_entry_that_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    let add = |name: &str, password: &str, read: &str, write: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "users",
                "add",
                name,
                "--tenants-read",
                read,
                "--tenants-write",
                write,
            ])
            .arg("--file")
            .arg(&users)
            .arg("--password-stdin")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    add("ops", "s3cret", "a,b", "a");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(!text.contains("s3cret"));
    // Invalid tenants are refused.
    let status = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "users",
            "add",
            "x",
            "--tenants-read",
            "../etc",
            "--password-stdin",
        ])
        .arg("--file")
        .arg(&users)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());

    let cairn = Cairn::start(&dir.path().join("data"), &basic_config(&users, false));
    let ops = Some(("ops", "s3cret"));
    assert_eq!(
        push(
            &cairn,
            Call {
                user: ops,
                tenant: Some("a")
            }
        )
        .0,
        200
    );
    assert_eq!(
        push(
            &cairn,
            Call {
                user: ops,
                tenant: Some("b")
            }
        )
        .0,
        403
    );
    assert_eq!(
        query(
            &cairn,
            "/api/v1/query",
            Call {
                user: ops,
                tenant: Some("b")
            }
        )
        .0,
        200
    );
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
