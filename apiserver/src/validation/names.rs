//! The string-format rules upstream keeps in `k8s.io/apimachinery/pkg/util/validation`:
//! DNS names, qualified names (label keys), label values, config keys, port and env names.
//!
//! Each `is_*` returns the list of upstream messages for a bad value (empty when valid);
//! callers turn each message into one `Invalid` field error, as upstream does. The character
//! classes are checked by hand instead of with regexes; the regex text appears only in the
//! messages, copied from upstream so users see the same hints.

/// `must be greater than or equal to 0`
pub(crate) const IS_NEGATIVE: &str = "must be greater than or equal to 0";

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Upstream's `RegexError`: the message, examples and the regex used.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", ex.join(" or "))
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (or with `alpha_first`, the DNS-1035 form).
fn is_label_chars(s: &str, alpha_first: bool) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            (if alpha_first { f.is_ascii_lowercase() } else { edge(f) }) && edge(l) && b.iter().all(inner)
        }
        _ => false,
    }
}

fn is_subdomain_chars(s: &str) -> bool {
    s.split('.').all(|part| is_label_chars(part, false))
}

/// An RFC 1123 label (`my-name`): namespaces, container names, port names of services.
pub(crate) fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !is_label_chars(s, false) {
        if is_subdomain_chars(s) {
            errs.push("must not contain dots".to_string());
        } else {
            let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
            errs.push(regex_error(msg, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// An RFC 1123 subdomain (`example.com`): the name rule of most kinds.
pub(crate) fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !is_subdomain_chars(s) {
        let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
        errs.push(regex_error(msg, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// An RFC 1035 label (starts with a letter): service names.
pub(crate) fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !is_label_chars(s, true) {
        let msg = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
        errs.push(regex_error(msg, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

/// A name usable as one URL path segment: the rule of kinds without a DNS rule.
pub(crate) fn is_path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"].iter().filter(|bad| s.contains(**bad)).map(|bad| format!("may not contain '{bad}'")).collect()
}

/// Which name rule a kind uses, upstream's `ValidateNameFunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

impl NameRule {
    /// Upstream's `NameIs*(name, prefix)`: with `prefix` (a `generateName`), a trailing
    /// dash is allowed because random characters follow it.
    pub(crate) fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && self != NameRule::PathSegment && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(name),
            NameRule::Label => is_dns1123_label(name),
            NameRule::Dns1035 => is_dns1035_label(name),
            NameRule::PathSegment if prefix => {
                ["/", "%"].iter().filter(|b| name.contains(**b)).map(|b| format!("may not contain '{b}'")).collect()
            }
            NameRule::PathSegment => is_path_segment_name(name),
        }
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A qualified name (`example.com/MyName`): label keys, annotation keys, finalizers.
pub(crate) fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            let re = regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"]);
            return vec![format!(
                "a qualified name {re} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    if !is_qualified_name_part(name) {
        let re = regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"]);
        errs.push(format!("name part {re}"));
    }
    errs
}

/// A label value: empty, or a qualified-name part of at most 63 characters.
pub(crate) fn is_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        errs.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        let msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        errs.push(regex_error(msg, &format!("({QUALIFIED_NAME_FMT})?"), &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// A ConfigMap or Secret data key.
pub(crate) fn is_config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        let msg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
        errs.push(regex_error(msg, "[-._a-zA-Z0-9]+", &["key.name", "KEY_NAME", "key-name"]));
    }
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// A port number, 1 to 65535.
pub(crate) fn is_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// An IANA-style port name (`http`, `metrics-1`).
pub(crate) fn is_port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// An environment variable name under 1.32's default `RelaxedEnvironmentVariableValidation`:
/// printable ASCII except `=`.
pub(crate) fn is_env_var_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if s.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .to_string(),
        );
    }
    errs
}

/// A percentage (`25%`).
pub(crate) fn is_percent(s: &str) -> Vec<String> {
    let digits = s.strip_suffix('%').unwrap_or("");
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        return Vec::new();
    }
    let msg = "a valid percent string must be a numeric string followed by an ending '%'";
    vec![regex_error(msg, "[0-9]+%", &["1%", "93%"])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_message_matches_upstream() {
        let errs = is_dns1123_subdomain("Foo_bar");
        assert_eq!(
            errs,
            vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
        assert!(is_dns1123_subdomain("web-1.example.com").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254))[0], "must be no more than 253 characters");
    }

    #[test]
    fn labels_reject_dots_with_their_own_message() {
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert!(is_dns1123_label("-ab")[0].contains("(e.g. 'my-name',  or '123-abc', regex used"));
        assert!(is_dns1123_label("9lives").is_empty());
        assert!(!is_dns1035_label("9lives").is_empty());
        assert!(is_dns1035_label("web").is_empty());
    }

    #[test]
    fn generate_name_may_end_with_a_dash() {
        assert!(NameRule::Subdomain.check("web-", true).is_empty());
        assert!(!NameRule::Subdomain.check("web-", false).is_empty());
        assert_eq!(NameRule::PathSegment.check("..", false), vec!["may not be '..'"]);
        assert_eq!(NameRule::PathSegment.check("a/b%", false), vec!["may not contain '/'", "may not contain '%'"]);
    }

    #[test]
    fn qualified_names_split_prefix_and_name() {
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("MyName").is_empty());
        assert_eq!(is_qualified_name("/x"), vec!["prefix part must be non-empty"]);
        let bad = is_qualified_name("INVALID.COM/x");
        assert!(bad[0].starts_with("prefix part a lowercase RFC 1123 subdomain"), "{bad:?}");
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist of"));
        assert!(is_qualified_name("bad key!")[0].starts_with("name part must consist of"));
        assert_eq!(is_qualified_name(&"k".repeat(64))[0], "name part must be no more than 63 characters");
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(is_label_value("").is_empty());
        assert!(is_label_value("v1.2_x").is_empty());
        assert!(is_label_value("-x")[0].contains("'MyValue',  or 'my_value',  or '12345'"));
    }

    #[test]
    fn config_keys_and_port_and_env_names() {
        assert!(is_config_map_key("app.properties").is_empty());
        assert_eq!(is_config_map_key("..data"), vec!["must not start with '..'"]);
        assert_eq!(is_config_map_key("a b").len(), 1);
        assert!(is_port_name("http").is_empty());
        assert_eq!(is_port_name("80"), vec!["must contain at least one letter (a-z)"]);
        assert_eq!(is_port_num(0), vec!["must be between 1 and 65535, inclusive"]);
        assert!(is_env_var_name("MY_VAR.1").is_empty());
        assert_eq!(is_env_var_name("A=B").len(), 1);
        assert!(is_percent("25%").is_empty());
        assert!(!is_percent("25").is_empty());
    }
}
