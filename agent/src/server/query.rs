//! Query strings as upstream's endpoints read them: repeated keys (`command=sh&command=-c`)
//! in order, `+` as a space, `%XX` escapes; and the typed parameters built on that.
//!
//! Invariant: a parameter that is present but does not parse is a 400, never silently
//! ignored (a typo in `tailLines` must not stream a whole log).

use k8s_openapi::jiff::Timestamp;

use super::error::ServerError;

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw.unwrap_or_default().split('&').filter(|p| !p.is_empty());
        Self(
            pairs
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; absent or empty is false (kubectl
    /// sends `stdin=` for false).
    pub fn flag(&self, key: &str) -> Result<bool, ServerError> {
        match self.get(key).unwrap_or_default() {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            other => Err(ServerError::BadRequest(format!("{key}: {other:?} is not a boolean"))),
        }
    }

    /// An integer, if present.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ServerError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| ServerError::BadRequest(format!("{key}: {v:?} is not an integer")))
            }
        }
    }

    /// An RFC 3339 time, if present.
    pub fn time(&self, key: &str) -> Result<Option<Timestamp>, ServerError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ServerError::BadRequest(format!("{key}: {v:?} is not an RFC 3339 time"))),
        }
    }
}

/// Percent-decode `s` (`+` is a space); invalid escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_escapes_and_types() {
        let p = Params::parse(Some("command=sh&command=-c&command=echo+hi%3B%20exit%203&stdin=&tty=true&tailLines=5"));
        assert_eq!(p.all("command"), ["sh", "-c", "echo hi; exit 3"]);
        assert!(!p.flag("stdin").unwrap() && p.flag("tty").unwrap() && !p.flag("absent").unwrap());
        assert_eq!(p.int("tailLines").unwrap(), Some(5));
        assert!(Params::parse(Some("tailLines=x")).int("tailLines").is_err());
        assert!(Params::parse(Some("follow=maybe")).flag("follow").is_err());
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%41"), "%zzA");
        let t = Params::parse(Some("sinceTime=2024-01-02T03%3A04%3A05Z")).time("sinceTime").unwrap();
        assert_eq!(t.unwrap().to_string(), "2024-01-02T03:04:05Z");
    }
}
