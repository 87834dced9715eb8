//! Masks secret-looking values in exec arguments before any sink sees the event (JSON,
//! metrics, OTLP, timeline): the value after a well-known secret flag (`--password x`,
//! `--token=x`) and the value of `KEY=VALUE` arguments whose key looks secret
//! (`DB_PASSWORD=x`). Patterns come from `[secrets]` in the config.
use crate::{
    config::SecretsConfig,
    event::{Argv, Detail, Event},
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

    /// Masks `ev`'s exec arguments; sets `exec.args_masked` when it changed any.
    pub fn apply(&self, ev: &mut Event) {
        if let Detail::Exec(x) = &mut ev.detail
            && let Some(masked) = self.masked(&x.args)
        {
            x.args = masked;
            x.args_masked = true;
        }
    }

    /// `args` with secret values replaced, or None when nothing needs masking (the common
    /// case, which allocates nothing).
    pub fn masked(&self, args: &Argv) -> Option<Argv> {
        let mut value_next = false;
        let mut out: Option<Argv> = None;
        for (i, arg) in args.iter().enumerate() {
            match (self.replacement(i, arg, &mut value_next), &mut out) {
                (Some(r), None) => {
                    let mut a: Argv = args.iter().take(i).collect();
                    a.push(&r);
                    out = Some(a);
                }
                (Some(r), Some(a)) => a.push(&r),
                (None, Some(a)) => a.push(arg),
                (None, None) => {}
            }
        }
        out
    }

    /// Masks `args` in place (snapshots); returns whether anything was masked.
    pub fn mask_args(&self, args: &mut [String]) -> bool {
        let mut masked = false;
        let mut value_next = false;
        for (i, arg) in args.iter_mut().enumerate() {
            if let Some(r) = self.replacement(i, arg, &mut value_next) {
                *arg = r;
                masked = true;
            }
        }
        masked
    }

    /// What argument `i` becomes, if it is a secret value. argv[0] is the program, never a
    /// value; `value_next` carries "the previous argument was a secret flag".
    fn replacement(&self, i: usize, arg: &str, value_next: &mut bool) -> Option<String> {
        if i == 0 {
            return None;
        }
        if std::mem::take(value_next) && !arg.starts_with('-') {
            return Some(self.mask.clone());
        }
        if self.flags.iter().any(|f| f == arg) {
            *value_next = true;
            return None;
        }
        let (key, value) = arg.split_once('=')?;
        if value.is_empty() || value == self.mask {
            return None;
        }
        (self.flags.iter().any(|f| f == key) || self.secret_key(key))
            .then(|| format!("{key}={}", self.mask))
    }

    fn secret_key(&self, key: &str) -> bool {
        let key = key.trim_start_matches('-').to_lowercase();
        self.key_patterns.iter().any(|p| key.contains(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both entry points (events' `Argv`, snapshots' `[String]`) must agree.
    fn masked(args: &[&str]) -> (Vec<String>, bool) {
        let m = Masker::new(&SecretsConfig::default());
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let changed = m.mask_args(&mut v);
        let argv: Argv = args.iter().collect();
        let from_argv = m.masked(&argv);
        assert_eq!(from_argv.is_some(), changed);
        assert_eq!(from_argv.unwrap_or(argv).to_vec(), v);
        (v, changed)
    }

    #[test]
    fn flag_values_and_secret_keys_are_masked() {
        let (v, changed) = masked(&["mysql", "--password", "hunter2", "--user=root", "--token=abc", "DB_PASSWORD=pw", "-v"]);
        assert!(changed);
        assert_eq!(v, ["mysql", "--password", "***", "--user=root", "--token=***", "DB_PASSWORD=***", "-v"]);
    }

    #[test]
    fn ordinary_arguments_are_left_alone() {
        let (v, changed) = masked(&["mkdir", "-p", "/tmp/x", "PATH=/bin", "--passwordless", "--token"]);
        assert!(!changed);
        assert_eq!(v, ["mkdir", "-p", "/tmp/x", "PATH=/bin", "--passwordless", "--token"]);
        // A flag followed by another flag has no value to mask.
        let (v, _) = masked(&["app", "--password", "--verbose"]);
        assert_eq!(v, ["app", "--password", "--verbose"]);
    }
}
