//! `$(VAR)` references in env values, command and args, with upstream's rules:
//! `$(NAME)` becomes NAME's value if NAME is defined, and stays as written otherwise;
//! `$$` is an escaped `$` (so `$$(NAME)` gives the literal `$(NAME)`); any other `$`, and
//! an unclosed `$(`, are kept as written.
//!
//! Invariant: only the bytes of `input` and values from `lookup` reach the output, in
//! order; splits happen at ASCII `$`, `(` and `)` only, so the output stays valid UTF-8.

/// Expand `input`, looking names up with `lookup`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut copied = 0; // input[..copied] is already in `out`
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&input[copied..i]);
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
                copied = i;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    i += 2 + len + 1;
                    copied = i;
                }
                // Unclosed: keep `$(` and go on after it.
                None => {
                    copied = i;
                    i += 2;
                }
            },
            // A lone `$`: kept, together with what follows.
            _ => {
                copied = i;
                i += 1;
            }
        }
    }
    out.push_str(&input[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn with(vars: &[(&str, &str)], input: &str) -> String {
        let map: BTreeMap<&str, &str> = vars.iter().copied().collect();
        expand(input, |n| map.get(n).copied())
    }

    #[test]
    fn references_expand_escapes_and_unknowns_stay() {
        let vars = [("A", "one"), ("B", "two"), ("EMPTY", "")];
        assert_eq!(with(&vars, "$(A)-$(B)"), "one-two");
        assert_eq!(with(&vars, "x$(EMPTY)y"), "xy");
        assert_eq!(with(&vars, "$(UNKNOWN) $(A)"), "$(UNKNOWN) one");
        assert_eq!(with(&vars, "$$(A)"), "$(A)", "escaped");
        assert_eq!(with(&vars, "$$$(A)"), "$one");
        assert_eq!(with(&vars, "cost: $5 and $"), "cost: $5 and $");
        assert_eq!(with(&vars, "$(A"), "$(A", "unclosed");
        assert_eq!(with(&vars, "$($(A))"), "$($(A))", "the name is `$(A`, undefined");
        assert_eq!(with(&vars, "é$(A)ü$é"), "éoneü$é");
        assert_eq!(with(&vars, ""), "");
        assert_eq!(with(&vars, "no refs"), "no refs");
    }
}
