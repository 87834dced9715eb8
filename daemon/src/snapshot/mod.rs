//! `podtrail snapshot <container|pod>`: one redacted `.tar.gz` with what an SRE would
//! otherwise collect by hand across the layers (crictl inspect / inspectp, the OCI config,
//! cgroup files, namespaces, the process tree, recent timeline events, node facts), plus a
//! manifest. Nothing is written before it went through the redactor.
mod collect;
mod redact;

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{config::Config, cri};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no CRI socket found (tried {0}); pass --cri-endpoint")]
    NoRuntime(String),
    #[error(transparent)]
    Cri(#[from] cri::CriError),
    #[error("no container or pod named {0:?} (containers: {1})")]
    NotFound(String, String),
    #[error("{0:?} matches several containers in different namespaces ({1}); pass --namespace")]
    Ambiguous(String, String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub struct SnapshotArgs {
    pub target: String,
    pub namespace: Option<String>,
    pub output: Option<PathBuf>,
    pub btf: PathBuf,
}

/// Files of the bundle, in order, already redacted.
struct Bundle {
    files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn json(&mut self, path: String, v: &Value) {
        let text = serde_json::to_vec_pretty(v).unwrap_or_default();
        self.files.push((path, text));
    }
}

pub async fn run(cfg: &Config, args: SnapshotArgs) -> Result<PathBuf, SnapshotError> {
    let endpoint = cri::detect_endpoint(Some(cfg.cri.endpoint.as_str()))
        .ok_or_else(|| SnapshotError::NoRuntime(cri::KNOWN_ENDPOINTS.join(", ")))?;
    let timeout = Duration::from_millis(cfg.cri.call_timeout_ms);
    let mut r = redact::Redactor::new(&cfg.secrets);
    let mut bundle = Bundle { files: Vec::new() };
    let found = collect::cri(&endpoint, timeout, &args.target, args.namespace.as_deref(), &mut r).await?;
    for (path, v) in &found.files {
        bundle.json(path.clone(), v);
    }
    for c in &found.containers {
        collect::host_side(c, &mut r, &mut bundle.files);
    }
    if let Some(events) = collect::timeline(cfg, &found) {
        bundle.files.push(("timeline/events.jsonl".into(), events.into_bytes()));
    }
    let facts = crate::doctor::facts(cfg, &args.btf).await;
    bundle.json("node/doctor.json".into(), &json!({ "checks": facts }));

    // The last pass: no literal secret value survives anywhere, then the manifest.
    let files: Vec<(String, Vec<u8>)> = bundle
        .files
        .into_iter()
        .map(|(p, b)| (p, r.scrub(&String::from_utf8_lossy(&b)).into_bytes()))
        .collect();
    let manifest = json!({
        "podtrail_version": env!("CARGO_PKG_VERSION"),
        "created_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "target": args.target,
        "runtime_endpoint": endpoint,
        "containers": found.containers.iter().map(|c| json!({"name": c.name, "id": c.id, "pod": c.pod, "namespace": c.namespace})).collect::<Vec<_>>(),
        "redaction": "environment values, values after secret flags, secret-looking keys and KEY=VALUE arguments, secret mount sources and bearer/JWT tokens are replaced by the [secrets] mask",
        "files": files.iter().map(|(p, b)| json!({"path": p, "bytes": b.len()})).collect::<Vec<_>>(),
    });
    let out = args.output.unwrap_or_else(|| default_name(&args.target));
    write_tar(&out, &manifest, &files).map_err(|source| SnapshotError::Write { path: out.clone(), source })?;
    Ok(out)
}

fn default_name(target: &str) -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let safe: String = target.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    PathBuf::from(format!("podtrail-snapshot-{safe}-{now}.tar.gz"))
}

fn write_tar(path: &Path, manifest: &Value, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
        h.set_cksum();
        tar.append_data(&mut h, format!("snapshot/{name}"), data)
    };
    add("manifest.json", &serde_json::to_vec_pretty(manifest).unwrap_or_default())?;
    for (name, data) in files {
        add(name, data)?;
    }
    tar.into_inner()?.finish()?.flush()
}
