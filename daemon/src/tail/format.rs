//! `podtrail tail -o text`: one aligned line per event, colored on a terminal.
use serde_json::Value;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn describe(v: &Value) -> String {
    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
    match v["kind"].as_str().unwrap_or("") {
        "exec" | "exec_failed" => {
            let args: Vec<String> = v["exec"]["args"].as_array().map(|a| a.iter().map(&s).collect()).unwrap_or_default();
            let err = v["exec"]["error"].as_str().map(|e| format!(" -> {e}")).unwrap_or_default();
            format!("{} [{}]{err}", s(&v["exec"]["filename"]), args.join(" "))
        }
        "exit" => {
            let x = &v["exit"];
            let how = match (x["code"].as_u64(), x["signal_name"].as_str()) {
                (Some(c), _) => format!("code {c}"),
                (_, Some(sig)) => sig.to_string(),
                _ => "?".into(),
            };
            let stop = if x["container_exit"].is_object() {
                format!(" (container stopped, restarts {})", x["container_exit"]["restart_count"])
            } else {
                String::new()
            };
            format!("{how}{stop}")
        }
        "setns" | "unshare" => {
            let changed: Vec<String> = v["ns_change"]["changed"].as_array().map(|a| a.iter().map(&s).collect()).unwrap_or_default();
            let target = &v["ns_change"]["target"];
            let into = if target.is_object() {
                format!(" into {}/{}/{}", s(&target["namespace"]), s(&target["pod"]), s(&target["container"]))
            } else {
                String::new()
            };
            format!("changed [{}]{into}", changed.join(","))
        }
        "oom_kill" => format!("victim {} ({})", v["oom"]["victim_tgid"], s(&v["oom"]["victim_comm"])),
        "anomaly" => format!("{} {}: {}", s(&v["anomaly"]["severity"]).to_uppercase(), s(&v["anomaly"]["rule"]), s(&v["anomaly"]["summary"])),
        k if k.starts_with("cgroup") => s(&v["cgroup"]["path"]),
        _ => String::new(),
    }
}

/// One text line for an event's JSON (None if it is not an event object).
pub fn text_line(json: &str, color: bool) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let ts = v["ts"].as_str().unwrap_or("");
    // HH:MM:SS.mmm of the RFC 3339 stamp.
    let time = ts.get(11..23).unwrap_or(ts);
    let m = &v["metadata"];
    let who = match m["container"].as_str() {
        Some(c) => format!("{}/{}/{}", m["namespace"].as_str().unwrap_or(""), m["pod"].as_str().unwrap_or(""), c),
        None => format!("({})", m["state"].as_str().unwrap_or("host")),
    };
    let kind = v["kind"].as_str().unwrap_or("?");
    let p = &v["process"];
    let line = format!(
        "{time} {kind:<15} {who:<40} {:>7} {:<15} {}",
        p["tgid"].as_u64().map(|t| t.to_string()).unwrap_or_default(),
        p["comm"].as_str().unwrap_or(""),
        describe(&v)
    );
    if !color {
        return Some(line);
    }
    let paint = match (kind, v["anomaly"]["severity"].as_str()) {
        ("anomaly", Some("critical")) => RED,
        ("anomaly", _) => YELLOW,
        (_, _) if m["state"] == "host" => DIM,
        _ => "",
    };
    Some(if paint.is_empty() { line } else { format!("{paint}{line}{RESET}") })
}

#[cfg(test)]
mod tests {
    #[test]
    fn anomaly_line_is_aligned_and_colored_by_severity() {
        let json = r#"{"ts":"2026-11-26T00:11:58.738700481Z","kind":"anomaly","process":{"tgid":42,"comm":"nsenter"},
            "metadata":{"state":"complete","namespace":"default","pod":"web","container":"nginx"},
            "anomaly":{"rule":"container_entered","severity":"warning","summary":"x entered y"}}"#;
        let plain = super::text_line(json, false).unwrap();
        assert!(plain.starts_with("00:11:58.738 anomaly         default/web/nginx"), "{plain}");
        assert!(plain.ends_with("WARNING container_entered: x entered y"), "{plain}");
        assert!(super::text_line(json, true).unwrap().starts_with(super::YELLOW));
        assert!(super::text_line("not json", false).is_none());
    }
}
