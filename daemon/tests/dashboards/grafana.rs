//! Reading the Grafana dashboards in `dashboards/`: structure checks, every PromQL expression
//! they hold (panel targets, annotations, `label_values` variables) and Grafana's variable
//! substitution.
use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards");

/// Variables Grafana itself defines (the test gives them values, see [`substitute`]).
const BUILTINS: [&str; 3] = ["__rate_interval", "__interval", "__range"];
const PANEL_TYPES: [&str; 5] = ["timeseries", "stat", "state-timeline", "bargauge", "table"];

pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

/// One PromQL expression and where it lives, e.g. `node-overview.json: panel 4 "Drops": A`.
pub struct Expr {
    pub place: String,
    pub expr: String,
}

/// A `label_values(selector, label)` variable query.
pub struct LabelValues {
    pub place: String,
    pub name: String,
    pub selector: String,
    pub label: String,
}

pub fn load_all() -> Vec<Dashboard> {
    let mut files: Vec<_> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("read {DIR}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the three podtrail dashboards in {DIR}, found {files:?}");
    files
        .iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
            Dashboard { file, json }
        })
        .collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

impl Dashboard {
    fn panels(&self) -> &[Value] {
        self.json["panels"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    fn variables(&self) -> &[Value] {
        self.json["templating"]["list"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    /// Every expression: panel targets, then Prometheus annotations.
    pub fn exprs(&self) -> Vec<Expr> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let place = format!("{}: panel {} {:?}: target {}", self.file, p["id"], s(p, "title"), s(t, "refId"));
                out.push(Expr { place, expr: s(t, "expr").to_string() });
            }
        }
        for a in self.json["annotations"]["list"].as_array().into_iter().flatten() {
            let expr = a["expr"].as_str().or(a["target"]["expr"].as_str());
            if let Some(expr) = expr {
                out.push(Expr { place: format!("{}: annotation {:?}", self.file, s(a, "name")), expr: expr.to_string() });
            }
        }
        out
    }

    /// Every `label_values(...)` variable (the two-argument form).
    pub fn label_values(&self) -> Vec<LabelValues> {
        let mut out = Vec::new();
        for v in self.variables().iter().filter(|v| v["type"] == "query") {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or("");
            let place = format!("{}: variable {}", self.file, s(v, "name"));
            let inner = q.trim().strip_prefix("label_values(").and_then(|r| r.strip_suffix(')'));
            let (selector, label) = inner.and_then(|i| i.rsplit_once(',')).unwrap_or_else(|| panic!("{place}: not label_values(selector, label): {q:?}"));
            out.push(LabelValues { place, name: s(v, "name").into(), selector: selector.trim().into(), label: label.trim().into() });
        }
        out
    }

    /// Structural problems: what Grafana needs to load and render it as provisioned.
    pub fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let d = &self.json;
        let f = &self.file;
        if s(d, "uid").is_empty() || s(d, "uid").len() > 40 {
            bad.push(format!("{f}: uid must be 1..=40 characters: {:?}", d["uid"]));
        }
        if s(d, "title").is_empty() {
            bad.push(format!("{f}: no title"));
        }
        if !(36..=41).contains(&d["schemaVersion"].as_u64().unwrap_or(0)) {
            bad.push(format!("{f}: schemaVersion {} (expected ~39)", d["schemaVersion"]));
        }
        if !d["id"].is_null() || d.get("__inputs").is_some() {
            bad.push(format!("{f}: an exported-for-sharing dashboard (id or __inputs) is not provisioned as it is"));
        }
        let vars: Vec<&str> = self.variables().iter().map(|v| s(v, "name")).collect();
        let ds = self.variables().iter().find(|v| v["name"] == "datasource");
        if !ds.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus") {
            bad.push(format!("{f}: no `datasource` variable of type datasource/prometheus"));
        }
        if self.panels().is_empty() {
            bad.push(format!("{f}: no panels"));
        }
        let mut ids = HashSet::new();
        let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
        for p in self.panels() {
            let at = format!("{f}: panel {} {:?}", p["id"], s(p, "title"));
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) || p["id"].as_u64().unwrap_or(0) == 0 {
                bad.push(format!("{at}: id missing or not unique"));
            }
            if s(p, "title").is_empty() {
                bad.push(format!("{at}: no title"));
            }
            if !PANEL_TYPES.contains(&s(p, "type")) {
                bad.push(format!("{at}: type {:?} is not one of {PANEL_TYPES:?}", p["type"]));
            }
            if s(&p["datasource"], "uid") != "${datasource}" {
                bad.push(format!("{at}: datasource must be the ${{datasource}} variable: {}", p["datasource"]));
            }
            let g = &p["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| g[k].as_u64());
            match (h, w, x, y) {
                (Some(h), Some(w), Some(x), Some(y)) if h > 0 && w > 0 && x + w <= 24 => {
                    for cx in x..x + w {
                        for cy in y..y + h {
                            if let Some(other) = cells.insert((cx, cy), at.clone()) {
                                bad.push(format!("{at}: overlaps {other} at x={cx} y={cy}"));
                            }
                        }
                    }
                }
                _ => bad.push(format!("{at}: bad gridPos {g}")),
            }
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            if targets.is_empty() {
                bad.push(format!("{at}: no targets"));
            }
            let mut refs = HashSet::new();
            for t in targets {
                if s(t, "expr").trim().is_empty() || !refs.insert(s(t, "refId")) || s(t, "refId").is_empty() {
                    bad.push(format!("{at}: target without expr or unique refId: {t}"));
                }
            }
        }
        for e in self.exprs() {
            for name in var_refs(&e.expr) {
                if !BUILTINS.contains(&name.as_str()) && !vars.contains(&name.as_str()) {
                    bad.push(format!("{}: ${name} is not a variable of this dashboard", e.place));
                }
            }
        }
        bad
    }
}

/// Names of the Grafana variables used: `$name`, `${name}`, `${name:format}`.
pub fn var_refs(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.push(name);
    }
    out
}

/// `expr` with every Grafana variable replaced by `values[name]`; an unknown one is an error.
pub fn substitute(expr: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| format!("no test value for ${name}"))?;
        out.push_str(value);
        let after = &body[name.len()..];
        rest = if braced { after.split_once('}').map(|(_, r)| r).ok_or("unclosed ${")? } else { after };
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn substitution_handles_every_form_and_rejects_unknown_variables() {
    let v = [("pod", "dash-.+"), ("__rate_interval", "2m")];
    assert_eq!(substitute(r#"rate(x{pod=~"$pod"}[$__rate_interval])"#, &v).unwrap(), r#"rate(x{pod=~"dash-.+"}[2m])"#);
    assert_eq!(substitute("${pod:regex}-${__rate_interval}", &v).unwrap(), "dash-.+-2m");
    assert!(substitute("x[$__range]", &v).unwrap_err().contains("$__range"));
    assert_eq!(var_refs("a$pod b${ns:raw}"), ["pod", "ns"]);
}
