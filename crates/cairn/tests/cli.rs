//! The command line: defaults printing and configuration errors.

use std::process::Command;

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn config_defaults_prints_every_field_with_a_comment() {
    let output = cairn().args(["config", "defaults"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("http_listen_address: 127.0.0.1:8080"),
        "{text}"
    );
    assert!(text.contains("path: ./data"), "{text}");
    // Every key line is preceded by a comment line.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.trim_start().starts_with('#') && line.contains(':') {
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "no comment above {line:?}"
            );
        }
    }
}

#[test]
fn an_unknown_config_key_stops_start_up_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.yaml");
    std::fs::write(&path, "server:\n  listen_adress: 127.0.0.1:0\n").unwrap();
    let output = cairn()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_adress"), "{stderr}");
}
