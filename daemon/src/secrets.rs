//! Masks secret-looking values in exec arguments before any sink sees the event (JSON,
//! metrics, OTLP, timeline): the value after a well-known secret flag (`--password x`,
//! `--token=x`) and the value of `KEY=VALUE` arguments whose key looks secret
//! (`DB_PASSWORD=x`). Patterns come from `[secrets]` in the config.
use crate::{
    config::SecretsConfig,
    event::{Detail, Event},
};

pub struct Masker {
    flags: Vec<String>,
    /// Lower-case substrings of secret-looking keys.
    key_patterns: Vec<String>,
    mask: String,
}

impl Masker {
    pub fn new(cfg: &SecretsConfig) -> Self {
        Masker {
            flags: cfg.flags.clone(),
            key_patterns: cfg.key_patterns.iter().map(|p| p.to_lowercase()).collect(),
            mask: cfg.mask.clone(),
        }
    }

    /// Masks `ev`'s exec arguments in place; sets `exec.args_masked` when it changed any.
    pub fn apply(&self, ev: &mut Event) {
        if let Detail::Exec(x) = &mut ev.detail {
            x.args_masked = self.mask_args(&mut x.args);
        }
    }

    /// Returns whether anything was masked. argv[0] is the program, never a value.
    pub fn mask_args(&self, args: &mut [String]) -> bool {
        let mut masked = false;
        let mut value_next = false;
        for arg in args.iter_mut().skip(1) {
            if value_next {
                value_next = false;
                if !arg.starts_with('-') {
                    *arg = self.mask.clone();
                    masked = true;
                    continue;
                }
            }
            if self.flags.iter().any(|f| f == arg) {
                value_next = true;
                continue;
            }
            let Some((key, value)) = arg.split_once('=') else {
                continue;
            };
            if value.is_empty() || value == self.mask {
                continue;
            }
            if self.flags.iter().any(|f| f == key) || self.secret_key(key) {
                *arg = format!("{key}={}", self.mask);
                masked = true;
            }
        }
        masked
    }

    fn secret_key(&self, key: &str) -> bool {
        let key = key.trim_start_matches('-').to_lowercase();
        self.key_patterns.iter().any(|p| key.contains(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(args: &[&str]) -> (Vec<String>, bool) {
        let m = Masker::new(&SecretsConfig::default());
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let changed = m.mask_args(&mut v);
        (v, changed)
    }

    #[test]
    fn flag_values_and_secret_keys_are_masked() {
        let (v, changed) = masked(&[
            "mysql",
            "--password",
            "hunter2",
            "--user=root",
            "--token=abc",
            "DB_PASSWORD=pw",
            "-v",
        ]);
        assert!(changed);
        assert_eq!(
            v,
            [
                "mysql",
                "--password",
                "***",
                "--user=root",
                "--token=***",
                "DB_PASSWORD=***",
                "-v"
            ]
        );
    }

    #[test]
    fn ordinary_arguments_are_left_alone() {
        let (v, changed) = masked(&[
            "mkdir",
            "-p",
            "/tmp/x",
            "PATH=/bin",
            "--passwordless",
            "--token",
        ]);
        assert!(!changed);
        assert_eq!(
            v,
            [
                "mkdir",
                "-p",
                "/tmp/x",
                "PATH=/bin",
                "--passwordless",
                "--token"
            ]
        );
        // A flag followed by another flag has no value to mask.
        let (v, _) = masked(&["app", "--password", "--verbose"]);
        assert_eq!(v, ["app", "--password", "--verbose"]);
    }
}
