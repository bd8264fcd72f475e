//! Cell formats shared by several printers, each matching an upstream helper: ages
//! (`duration.HumanDuration`), label maps (`labels.FormatLabels`), label selectors
//! (`metav1.FormatLabelSelector`) and container name/image lists (`layoutContainerCells`).

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::field::{list, text};

/// Upstream's `duration.HumanDuration`: about two significant figures ("45s", "3m20s", "10m",
/// "3h15m", "20h", "2d5h", "45d", "2y100d", "9y").
pub fn human_duration(d: std::time::Duration) -> String {
    human_seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `HumanDuration` of a signed duration: up to one second in the future reads as "0s" (clock
/// skew between machines), further in the future as `<invalid>`.
pub(super) fn human_signed(d: SignedDuration) -> String {
    human_seconds(d.as_secs())
}

/// Whole seconds truncated toward zero, as Go's `int(d.Seconds())`.
fn human_seconds(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 2 * 60 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", secs % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_rest(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// "3h" or "3h15m": the smaller unit only when it is not zero.
fn with_rest(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// Upstream's `translateTimestampSince`: the age of a time, `<unknown>` when unset.
pub(super) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_signed(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    // Sorted here rather than relying on the map's order: serde_json's `preserve_order`
    // feature, if any crate in the build enables it, keeps insertion order instead.
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A label selector that upstream's `LabelSelectorAsSelector` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidSelector;

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `""` for an
/// unset or empty selector.
pub(super) fn selector_string(sel: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(sel) = sel else { return Ok(String::new()) };
    let Some(sel) = sel.as_object() else { return Err(InvalidSelector) };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").filter(|v| !v.is_null()) {
        for (key, value) in labels.as_object().ok_or(InvalidSelector)? {
            let value = value.as_str().ok_or(InvalidSelector)?;
            check_key(key)?;
            check_value(value)?;
            reqs.push((key.clone(), format!("{key}={value}")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").filter(|v| !v.is_null()) {
        for expr in exprs.as_array().ok_or(InvalidSelector)? {
            let key = text(expr, &["key"]);
            reqs.push((key.to_string(), expression(expr, key)?));
        }
    }
    // A stable sort keeps duplicate keys in their given order; upstream's order for those is
    // unspecified.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// One `matchExpressions` entry as a requirement string (`k in (a,b)`, `k notin (a)`, `k`, `!k`).
fn expression(expr: &Value, key: &str) -> Result<String, InvalidSelector> {
    check_key(key)?;
    let mut values = Vec::new();
    for v in list(expr, &["values"]) {
        let v = v.as_str().ok_or(InvalidSelector)?;
        check_value(v)?;
        values.push(v);
    }
    values.sort_unstable();
    match (text(expr, &["operator"]), values.is_empty()) {
        ("In", false) => Ok(format!("{key} in ({})", values.join(","))),
        ("NotIn", false) => Ok(format!("{key} notin ({})", values.join(","))),
        ("Exists", true) => Ok(key.to_string()),
        ("DoesNotExist", true) => Ok(format!("!{key}")),
        _ => Err(InvalidSelector),
    }
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when empty, `<error>` when invalid.
pub(super) fn format_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(InvalidSelector) => "<error>".into(),
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), InvalidSelector> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(|l| edged(l, is_lower_or_digit, &['-'])));
    if prefix_ok && !name.is_empty() && check_value(name).is_ok() {
        Ok(())
    } else {
        Err(InvalidSelector)
    }
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
fn check_value(value: &str) -> Result<(), InvalidSelector> {
    let ok = value.is_empty() || (value.len() <= 63 && edged(value, |c| c.is_ascii_alphanumeric(), &['-', '_', '.']));
    if ok {
        Ok(())
    } else {
        Err(InvalidSelector)
    }
}

fn is_lower_or_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Non-empty, with `edge` characters at both ends and `edge` characters or `punct` between.
fn edged(s: &str, edge: fn(char) -> bool, punct: &[char]) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().next_back()) else { return false };
    edge(first) && edge(last) && s.chars().all(|c| edge(c) || punct.contains(&c))
}

/// Upstream's `layoutContainerCells`: container names and images, each comma-joined.
pub(super) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn human_duration_matches_upstream_buckets() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 15 * 60, "3h15m"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (7 * 86400, "7d"),
            (45 * 86400, "45d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (830 * 86400, "2y100d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400 + 5 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
    }

    #[test]
    fn future_times_tolerate_one_second_of_skew() {
        assert_eq!(human_signed(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(human_signed(SignedDuration::from_secs(-1)), "0s");
        assert_eq!(human_signed(SignedDuration::from_secs(-2)), "<invalid>");
        let now: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(since(Some("2024-05-01T09:50:00Z".parse().unwrap()), now), "10m");
        assert_eq!(since(None, now), "<unknown>");
    }

    #[test]
    fn labels_are_sorted_pairs_or_none() {
        assert_eq!(format_labels(Some(&json!({"tier": "web", "app": "x"}))), "app=x,tier=web");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selectors_render_like_upstream() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "example.com/zone", "operator": "Exists", "values": []}
            ]
        });
        assert_eq!(
            selector_string(Some(&sel)).unwrap(),
            "app=web,!canary,env notin (prod),example.com/zone,tier in (a,b)"
        );
        assert_eq!(format_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_selector(None), "<none>");
        assert_eq!(selector_string(None).unwrap(), "");
    }

    #[test]
    fn invalid_selectors_are_refused() {
        for sel in [
            json!({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchLabels": {"bad key": "x"}}),
            json!({"matchLabels": {"a": "-x"}}),
            json!({"matchLabels": {"Example.com/a": "x"}}),
            json!({"matchLabels": {"a/b/c": "x"}}),
            json!("app=web"),
        ] {
            assert_eq!(selector_string(Some(&sel)), Err(InvalidSelector), "{sel}");
        }
        assert_eq!(format_selector(Some(&json!({"matchLabels": {"a": 1}}))), "<error>");
    }

    #[test]
    fn containers_lay_out_on_one_line() {
        let cs = json!([{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]);
        let (names, images) = container_cells(cs.as_array().unwrap());
        assert_eq!((names.as_str(), images.as_str()), ("web,log", "nginx:1,busybox"));
    }
}
