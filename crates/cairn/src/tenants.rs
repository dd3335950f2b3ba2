//! `cairn tenants`: fetches `GET /api/v1/admin/tenants` from a running
//! server and prints it as a table (or the JSON as is with `--json`).

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

#[derive(clap::Args, Debug)]
pub struct TenantsArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9009")]
    url: String,
    /// Basic-auth user (an admin); `CAIRN_USER` when not given.
    #[arg(long)]
    user: Option<String>,
    /// Read the password from the first line of standard input; otherwise
    /// it is taken from `CAIRN_PASSWORD`.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Vec<Tenant>,
}

#[derive(Debug, Deserialize)]
struct Tenant {
    tenant: String,
    #[serde(rename = "activeSeries")]
    active_series: u64,
    #[serde(rename = "ingestionRate")]
    ingestion_rate: f64,
    #[serde(rename = "bytesStored")]
    bytes_stored: u64,
    #[serde(rename = "lastWriteTime")]
    last_write_time: Option<String>,
}

pub fn run(args: TenantsArgs) -> Result<(), String> {
    let user = args.user.or_else(|| std::env::var("CAIRN_USER").ok());
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    } else {
        std::env::var("CAIRN_PASSWORD").ok()
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let url = format!("{}/api/v1/admin/tenants", args.url.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(user) = &user {
        request = request.basic_auth(user, password.as_deref());
    }
    let response = request
        .send()
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .map_err(|e| format!("cannot read the answer of {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {}", body.trim()));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{body}").map_err(|e| e.to_string())?;
        return Ok(());
    }
    let envelope: Envelope =
        serde_json::from_str(&body).map_err(|e| format!("unexpected answer from {url}: {e}"))?;
    write!(out, "{}", table(&envelope.data)).map_err(|e| e.to_string())
}

/// Aligned columns, one tenant per line.
fn table(tenants: &[Tenant]) -> String {
    let header = [
        "TENANT",
        "ACTIVE SERIES",
        "INGESTION RATE (samples/s)",
        "BYTES STORED",
        "LAST WRITE",
    ];
    let rows: Vec<[String; 5]> = tenants
        .iter()
        .map(|t| {
            [
                t.tenant.clone(),
                t.active_series.to_string(),
                format!("{:.2}", t.ingestion_rate),
                t.bytes_stored.to_string(),
                t.last_write_time.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let tenants = vec![
            Tenant {
                tenant: "team-a".into(),
                active_series: 12345,
                ingestion_rate: 1.5,
                bytes_stored: 10,
                last_write_time: Some("2026-01-01T00:00:00.000Z".into()),
            },
            Tenant {
                tenant: "b".into(),
                active_series: 0,
                ingestion_rate: 0.0,
                bytes_stored: 0,
                last_write_time: None,
            },
        ];
        let text = table(&tenants);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("TENANT  ACTIVE SERIES  INGESTION RATE"));
        assert!(lines[1].starts_with("team-a  12345          1.50"));
        assert!(lines[2].ends_with("  -"));
    }
}
