//! The documented JSON schema matches what the daemon prints: every line of a run with a
//! varied workload is checked against `schema/event.schema.json` (required keys, no
//! undocumented keys, JSON types and enums), with a small validator for the subset used.
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(root, &root["$defs"][name])
        }
        None => s,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let s = resolve(root, schema);
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let errs: Vec<String> = one.iter().filter_map(|o| check(root, o, v, path).err()).collect();
        return if errs.len() < one.len() { Ok(()) } else { Err(errs.join(" | ")) };
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => return Err(format!("{path}: not {t}: {v}")),
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)) => {
            return Err(format!("{path}: none of {ts:?}: {v}"));
        }
        _ => {}
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{path}: {v} not in {e:?}"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{path}: {v} != {c}"));
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_i64)
        && v.as_i64().is_some_and(|n| n < min)
    {
        return Err(format!("{path}: {v} < {min}"));
    }
    if let (Some(props), Some(obj)) = (s.get("properties").and_then(Value::as_object), v.as_object()) {
        for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                return Err(format!("{path}: missing required {req}"));
            }
        }
        for (k, val) in obj {
            let sub = props.get(k).ok_or_else(|| format!("{path}: undocumented key {k}"))?;
            check(root, sub, val, &format!("{path}.{k}"))?;
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(root, items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn every_output_line_matches_the_schema() {
    if !root_or_skip("every_output_line_matches_the_schema") {
        return;
    }
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/event.schema.json")).unwrap(),
    )
    .unwrap();
    let d = Daemon::start(&[]);
    let cg = TempCgroup::new(unified_root(), "schema");
    cg.write("cgroup.freeze", "1");
    cg.write("cgroup.freeze", "0");
    drop(cg);
    for args in [&["-c", "exit 3"][..], &["-c", "/nonexistent-podtrail"], &["-c", "unshare -n /bin/true"], &["-c", "kill -9 $$"]] {
        let _ = Command::new("/bin/sh").args(args).status();
    }
    let marker = Command::new("/bin/echo").arg("schema-marker").output().unwrap();
    assert!(marker.status.success());
    d.wait_for("marker", 10, |v| v["exec"]["args"][1] == "schema-marker");
    d.wait_for("cgroup_rmdir", 10, |v| is_kind(v, "cgroup_rmdir"));
    let events = d.events();
    let mut kinds = std::collections::BTreeSet::new();
    for ev in &events {
        check(&schema, &schema, ev, "$").unwrap_or_else(|e| panic!("schema violation: {e}\nline: {ev}"));
        kinds.insert(ev["kind"].as_str().unwrap().to_string());
    }
    for k in ["exec", "exec_failed", "fork", "exit", "unshare", "cgroup_mkdir", "cgroup_freeze", "cgroup_frozen", "cgroup_unfreeze", "cgroup_rmdir"] {
        assert!(kinds.contains(k), "workload produced no {k} event; kinds seen: {kinds:?}");
    }
    d.stop();
}
