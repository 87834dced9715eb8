//! Redaction for snapshot bundles: environment values, secret-looking arguments and keys,
//! secret mount sources and bearer tokens are masked before anything is written; a final
//! pass removes any literal secret value that still appears (e.g. an env value echoed in a
//! command line).
use serde_json::Value;

use crate::secrets::Masker;

pub struct Redactor {
    masker: Masker,
    mask: String,
    key_patterns: Vec<String>,
    /// Literal values found in environments and secret fields, scrubbed from every file.
    pub literals: Vec<String>,
}

fn looks_like_token(s: &str) -> bool {
    // JWTs (service account tokens) and bearer headers.
    (s.starts_with("eyJ") && s.matches('.').count() >= 2) || s.to_ascii_lowercase().starts_with("bearer ")
}

impl Redactor {
    pub fn new(cfg: &crate::config::SecretsConfig) -> Self {
        Redactor {
            masker: Masker::new(cfg),
            mask: cfg.mask.clone(),
            key_patterns: cfg.key_patterns.iter().map(|p| p.to_lowercase()).collect(),
            literals: Vec::new(),
        }
    }

    fn secret_key(&self, key: &str) -> bool {
        let k = key.to_lowercase();
        self.key_patterns.iter().any(|p| k.contains(p.as_str()))
    }

    fn remember(&mut self, value: &str) {
        if value.len() >= 4 && value != self.mask && !self.literals.iter().any(|l| l == value) {
            self.literals.push(value.to_string());
        }
    }

    /// `KEY=VALUE` -> `KEY=***`, remembering VALUE.
    fn env_entry(&mut self, entry: &str) -> String {
        match entry.split_once('=') {
            Some((k, v)) => {
                self.remember(v);
                format!("{k}={}", self.mask)
            }
            None => entry.to_string(),
        }
    }

    /// Masks a command line (argv) in place.
    pub fn args(&mut self, args: &mut [String]) {
        let before: Vec<String> = args.to_vec();
        self.masker.mask_args(args);
        for (b, a) in before.iter().zip(args.iter()) {
            if b != a {
                let secret = b.split_once('=').map(|(_, v)| v).unwrap_or(b);
                self.remember(secret);
            }
        }
    }

    /// Walks CRI / OCI JSON: `env` arrays, CRI `envs` key/value lists, `args`, secret-looking
    /// keys, secret mount sources and token-looking strings.
    pub fn json(&mut self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    match (k.as_str(), &mut *val) {
                        ("env", Value::Array(items)) => {
                            for it in items.iter_mut() {
                                if let Value::String(s) = it {
                                    *s = self.env_entry(s);
                                }
                            }
                        }
                        ("envs", Value::Array(items)) => {
                            for it in items.iter_mut() {
                                if let Some(Value::String(s)) = it.get_mut("value") {
                                    self.remember(s);
                                    *s = self.mask.clone();
                                }
                            }
                        }
                        ("args" | "command", Value::Array(items)) => {
                            let mut argv: Vec<String> = items.iter().map(|a| a.as_str().unwrap_or("").to_string()).collect();
                            self.args(&mut argv);
                            *items = argv.into_iter().map(Value::String).collect();
                        }
                        (key, Value::String(s)) if self.secret_key(key) && !s.is_empty() => {
                            self.remember(s);
                            *s = self.mask.clone();
                        }
                        (key, Value::String(s)) if (key == "source" || key == "host_path" || key == "hostPath") && s.contains("secret") => {
                            *s = self.mask.clone();
                        }
                        _ => self.json(val),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.json(i)),
            Value::String(s) if looks_like_token(s) => {
                self.remember(s);
                *s = self.mask.clone();
            }
            _ => {}
        }
    }

    /// The last pass over a finished file.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for l in &self.literals {
            out = out.replace(l.as_str(), &self.mask);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_args_keys_mounts_and_tokens_are_masked_everywhere() {
        let mut r = Redactor::new(&crate::config::SecretsConfig::default());
        let mut v: Value = serde_json::json!({
            "process": {"env": ["PATH=/bin", "DB=planted1"], "args": ["app", "--token", "planted2"]},
            "config": {"envs": [{"key": "K", "value": "planted3"}], "annotations": {"api_token": "planted4"}},
            "mounts": [{"source": "/var/lib/kubelet/pods/x/volumes/kubernetes.io~secret/t", "destination": "/s"}],
            "note": "eyJhbGciOi.eyJzdWIi.c2ln",
        });
        r.json(&mut v);
        let text = r.scrub(&format!("{v} and an echo of planted1 in a command line"));
        for p in ["planted1", "planted2", "planted3", "planted4", "kubernetes.io~secret", "eyJhbGciOi"] {
            assert!(!text.contains(p), "{p} leaked: {text}");
        }
        assert!(text.contains("PATH=***") && text.contains("\"--token\""), "{text}");
    }
}
