//! The `labelSelector` string grammar, as upstream's `labels.Parse` reads it:
//!
//! ```text
//! selector    ::= "" | requirement { "," requirement }
//! requirement ::= [ "!" ] KEY [ ( "in" | "notin" ) "(" [ VALUE { "," VALUE } ] ")"
//!                             | ( "=" | "==" | "!=" | ">" | "<" ) [ VALUE ] ]
//! ```
//!
//! A lexer splits the string into tokens (whitespace separates them and is otherwise
//! ignored; `in`/`notin` are keywords only where an operator may stand, so they remain usable
//! as keys and values), then a recursive-descent parser builds validated requirements. Error
//! texts are upstream's, so messages match what users see from a real API server.

use std::collections::BTreeSet;

use super::label::{key_error, Op, Requirement};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    End,
    Ident(&'a str),
    Comma,
    OpenPar,
    ClosePar,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
}

impl<'a> Tok<'a> {
    /// The text the token was read from, as error messages quote it.
    fn literal(self) -> &'a str {
        match self {
            Tok::End => "",
            Tok::Ident(s) => s,
            Tok::Comma => ",",
            Tok::OpenPar => "(",
            Tok::ClosePar => ")",
            Tok::Not => "!",
            Tok::Equals => "=",
            Tok::DoubleEquals => "==",
            Tok::NotEquals => "!=",
            Tok::GreaterThan => ">",
            Tok::LessThan => "<",
            Tok::In => "in",
            Tok::NotIn => "notin",
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the selector into tokens, ending with `End`. Identifiers run up to whitespace or a
/// special character; operators take the longest match (`!=` over `!`).
fn lex(s: &str) -> Vec<Tok<'_>> {
    let bytes = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        let Some(&c) = bytes.get(i) else {
            toks.push(Tok::End);
            return toks;
        };
        if is_special(c) {
            let (tok, len) = match bytes.get(i..i + 2) {
                Some(b"!=") => (Tok::NotEquals, 2),
                Some(b"==") => (Tok::DoubleEquals, 2),
                _ => (single(c), 1),
            };
            toks.push(tok);
            i += len;
        } else {
            // Whitespace and special characters are ASCII, so `start..i` is on char boundaries.
            let start = i;
            while bytes.get(i).is_some_and(|b| !is_special(*b) && !is_space(*b)) {
                i += 1;
            }
            toks.push(match &s[start..i] {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                word => Tok::Ident(word),
            });
        }
    }
}

fn single(c: u8) -> Tok<'static> {
    match c {
        b'=' => Tok::Equals,
        b'!' => Tok::Not,
        b'(' => Tok::OpenPar,
        b')' => Tok::ClosePar,
        b',' => Tok::Comma,
        b'>' => Tok::GreaterThan,
        _ => Tok::LessThan,
    }
}

/// Where the parser stands: only where an operator may follow are `in`/`notin` keywords;
/// everywhere else they are plain identifiers (`in in (in)` is a valid selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Operator,
    Values,
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self, ctx: Ctx) -> Tok<'a> {
        let tok = self.toks.get(self.pos).copied().unwrap_or(Tok::End);
        match (ctx, tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Ident(tok.literal()),
            _ => tok,
        }
    }

    fn next(&mut self, ctx: Ctx) -> Tok<'a> {
        let tok = self.peek(ctx);
        self.pos += 1;
        tok
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek(Ctx::Values) {
                Tok::Ident(_) | Tok::Not => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next(Ctx::Values) {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let after = self.peek(Ctx::Values);
                            if !matches!(after, Tok::Ident(_) | Tok::Not) {
                                return Err(format!("found '{}', expected: identifier after ','", after.literal()));
                            }
                        }
                        t => return Err(format!("found '{}', expected: ',' or 'end of string'", t.literal())),
                    }
                }
                Tok::End => return Ok(requirements),
                t => return Err(format!("found '{}', expected: !, identifier, or 'end of string'", t.literal())),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_unary_op()?;
        if let Some(op) = unary {
            return Requirement::new(key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(key, op, values)
    }

    /// Reads `[!] KEY` and validates the key. Returns the operator when it is already known:
    /// `DoesNotExist` after `!`, `Exists` when nothing follows the key.
    fn key_and_unary_op(&mut self) -> Result<(&'a str, Option<Op>), String> {
        let mut tok = self.next(Ctx::Values);
        let negated = tok == Tok::Not;
        if negated {
            tok = self.next(Ctx::Values);
        }
        let Tok::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        if let Some(err) = key_error(key) {
            return Err(err);
        }
        if negated {
            return Ok((key, Some(Op::DoesNotExist)));
        }
        let bare = matches!(self.peek(Ctx::Values), Tok::End | Tok::Comma);
        Ok((key, bare.then_some(Op::Exists)))
    }

    fn operator(&mut self) -> Result<Op, String> {
        Ok(match self.next(Ctx::Operator) {
            Tok::In => Op::In,
            Tok::NotIn => Op::NotIn,
            Tok::Equals | Tok::DoubleEquals => Op::Equals,
            Tok::NotEquals => Op::NotEquals,
            Tok::GreaterThan => Op::GreaterThan,
            Tok::LessThan => Op::LessThan,
            t => return Err(format!("found '{}', expected: in, notin, =, ==, !=, gt, lt", t.literal())),
        })
    }

    /// `( a, b, ... )`. Missing values between commas, and `()`, stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next(Ctx::Values);
        if open != Tok::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        match self.peek(Ctx::Values) {
            Tok::Ident(_) | Tok::Comma => {
                let values = self.value_list()?;
                // `value_list` returns only when `)` is next.
                self.next(Ctx::Values);
                Ok(values.into_iter().collect())
            }
            Tok::ClosePar => {
                self.next(Ctx::Values);
                Ok(vec![String::new()])
            }
            t => Err(format!("found '{}', expected: ',', ')' or identifier", t.literal())),
        }
    }

    fn value_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            match self.next(Ctx::Values) {
                Tok::Ident(v) => {
                    values.insert(v.to_string());
                    match self.peek(Ctx::Values) {
                        Tok::Comma => {}
                        Tok::ClosePar => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Tok::Comma => {
                    // A comma with no value before it (`(,`) or after it (`,)` or `,,`).
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.peek(Ctx::Values) {
                        Tok::ClosePar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Tok::Comma => {
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                t => return Err(format!("found '{}', expected: ',', or identifier", t.literal())),
            }
        }
    }

    /// The value after `=`, `!=`, `>`, `<`; absent means the empty value (`a=` or `a=,b`).
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(Ctx::Values), Tok::End | Tok::Comma) {
            return Ok(String::new());
        }
        match self.next(Ctx::Values) {
            Tok::Ident(v) => Ok(v.to_string()),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

/// Parses a selector string into validated requirements, in written order.
pub(super) fn parse(s: &str) -> Result<Vec<Requirement>, String> {
    Parser { toks: lex(s), pos: 0 }.selector()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::selector::{LabelSelector, SelectorError};

    fn canonical(s: &str) -> String {
        LabelSelector::parse(s).expect("test selector parses").to_string()
    }

    fn error(s: &str) -> String {
        match LabelSelector::parse(s) {
            Err(SelectorError::Label(msg)) => msg,
            other => panic!("{s:?} should fail as a label selector, got {other:?}"),
        }
    }

    #[test]
    fn every_operator_parses_to_its_canonical_form() {
        assert_eq!(canonical("a=b"), "a=b");
        assert_eq!(canonical("a==b"), "a=b");
        assert_eq!(canonical("a!=b"), "a!=b");
        assert_eq!(canonical("a in (y,x,x)"), "a in (x,y)");
        assert_eq!(canonical("a notin (x)"), "a notin (x)");
        assert_eq!(canonical("a"), "a");
        assert_eq!(canonical("!a"), "!a");
        assert_eq!(canonical("a>1"), "a>1");
        assert_eq!(canonical("a<10"), "a<10");
        assert_eq!(canonical("example.com/app=web"), "example.com/app=web");
    }

    #[test]
    fn whitespace_is_tolerated_and_requirements_sort_by_key() {
        assert_eq!(canonical(" d = 1 ,\tc in ( x , y ) ,\n! b , a "), "a,!b,c in (x,y),d=1");
        assert_eq!(canonical(""), "");
        assert_eq!(canonical("  \t"), "");
    }

    #[test]
    fn missing_values_mean_the_empty_value() {
        assert_eq!(canonical("a="), "a=");
        assert_eq!(canonical("a=,b!="), "a=,b!=");
        assert_eq!(canonical("x in (foo,,baz),y,z notin ()"), "x in (,baz,foo),y,z notin ()");
        assert_eq!(canonical("a in (,x)"), "a in (,x)");
        assert_eq!(canonical("a in (x,)"), "a in (,x)");
    }

    #[test]
    fn in_and_notin_are_keywords_only_in_operator_position() {
        assert_eq!(canonical("in in (in,notin)"), "in in (in,notin)");
        assert_eq!(canonical("notin=in,!in"), "!in,notin=in");
    }

    #[test]
    fn syntax_errors_carry_upstream_messages() {
        assert_eq!(error("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(error(",a"), "found ',', expected: !, identifier, or 'end of string'");
        assert_eq!(error("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(error("a=b=c"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(error("!a=b"), "found '=', expected: ',' or 'end of string'");
        let req = |m: &str| format!("unable to parse requirement: {m}");
        assert_eq!(error("a b"), req("found 'b', expected: in, notin, =, ==, !=, gt, lt"));
        assert_eq!(error("a!b"), req("found '!', expected: in, notin, =, ==, !=, gt, lt"));
        assert_eq!(error("a in x"), req("found 'x' expected: '('"));
        assert_eq!(error("a in (x"), req("found '', expected: ',' or ')'"));
        assert_eq!(error("a in (=)"), req("found '=', expected: ',', ')' or identifier"));
        assert_eq!(error("a in (x,=)"), req("found '=', expected: ',', or identifier"));
        assert_eq!(error("a=("), req("found '(', expected: identifier"));
        assert_eq!(error("!"), req("found '', expected: identifier"));
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        let key_err = error("Foo_=x");
        assert!(
            key_err.starts_with("unable to parse requirement: key: Invalid value: \"Foo_\": name part must consist")
        );
        assert!(key_err.ends_with("regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        assert!(error("a/b/c").contains("a qualified name must consist"));
        assert!(error(&format!("{}=x", "k".repeat(64))).ends_with("name part must be no more than 63 characters"));
        assert!(error("a=b_")
            .starts_with("unable to parse requirement: values[0][a]: Invalid value: \"b_\": a valid label"));
        assert!(error(&format!("a={}", "v".repeat(64))).ends_with(": must be no more than 63 characters"));
        assert!(error("a=x:y").contains("Invalid value: \"x:y\""));
    }

    #[test]
    fn gt_and_lt_need_integer_values() {
        assert_eq!(
            error("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value \
             must be an integer"
        );
        assert!(error("a>99999999999999999999").contains("the value must be an integer"));
        // A sign is not a valid label value, so negative bounds are rejected as upstream does.
        assert!(error("a<-1").contains("values[0][a]: Invalid value: \"-1\""));
    }

    #[test]
    fn several_problems_are_reported_together() {
        let msg = error("a in (-x,_y)");
        assert!(msg.starts_with("unable to parse requirement: [values[0][a]: Invalid value: \"-x\""), "{msg}");
        assert!(msg.contains(", values[1][a]: Invalid value: \"_y\""), "{msg}");
        assert!(msg.ends_with(']'), "{msg}");
    }

    /// The reference model: a requirement as plain data, evaluated directly.
    #[derive(Debug, Clone)]
    enum Model {
        Eq(String, String),
        NotEq(String, String),
        In(String, Vec<String>),
        NotIn(String, Vec<String>),
        Exists(String),
        NotExists(String),
        Gt(String, u8),
        Lt(String, u8),
    }

    impl Model {
        fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
            let get = |k: &String| labels.get(k).map(String::as_str);
            let int = |k: &String| get(k).and_then(|v| v.parse::<i64>().ok());
            match self {
                Model::Eq(k, v) => get(k) == Some(v.as_str()),
                Model::NotEq(k, v) => get(k) != Some(v.as_str()),
                Model::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                Model::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                Model::Exists(k) => get(k).is_some(),
                Model::NotExists(k) => get(k).is_none(),
                Model::Gt(k, n) => int(k).is_some_and(|x| x > i64::from(*n)),
                Model::Lt(k, n) => int(k).is_some_and(|x| x < i64::from(*n)),
            }
        }

        /// Writes the requirement with `sp` wherever the grammar allows whitespace.
        fn render(&self, sp: &str, double_equals: bool) -> String {
            let eq = if double_equals { "==" } else { "=" };
            match self {
                Model::Eq(k, v) => format!("{sp}{k}{sp}{eq}{sp}{v}{sp}"),
                Model::NotEq(k, v) => format!("{sp}{k}{sp}!={sp}{v}{sp}"),
                Model::In(k, vs) => format!("{sp}{k} {sp}in{sp}({sp}{}{sp}){sp}", vs.join(&format!("{sp},{sp}"))),
                Model::NotIn(k, vs) => format!("{k} notin{sp}({}){sp}", vs.join(",")),
                Model::Exists(k) => format!("{sp}{k}{sp}"),
                Model::NotExists(k) => format!("{sp}!{sp}{k}{sp}"),
                Model::Gt(k, n) => format!("{k}{sp}>{sp}{n}"),
                Model::Lt(k, n) => format!("{k}<{n}{sp}"),
            }
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "in", "x.io/c", "d-e_f.G"]).prop_map(String::from)
    }

    fn value() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "1", "2", "10", "v", "in", "notin", "V.w-x_y"]).prop_map(String::from)
    }

    fn requirement() -> impl Strategy<Value = Model> {
        let values = || prop::collection::vec(value(), 1..4);
        prop_oneof![
            (key(), value()).prop_map(|(k, v)| Model::Eq(k, v)),
            (key(), value()).prop_map(|(k, v)| Model::NotEq(k, v)),
            (key(), values()).prop_map(|(k, v)| Model::In(k, v)),
            (key(), values()).prop_map(|(k, v)| Model::NotIn(k, v)),
            key().prop_map(Model::Exists),
            key().prop_map(Model::NotExists),
            (key(), 0u8..12).prop_map(|(k, n)| Model::Gt(k, n)),
            (key(), 0u8..12).prop_map(|(k, n)| Model::Lt(k, n)),
        ]
    }

    proptest! {
        #[test]
        fn parsed_selectors_agree_with_the_model(
            reqs in prop::collection::vec(requirement(), 0..5),
            labels in prop::collection::btree_map(key(), value(), 0..5),
            sp in prop::sample::select(vec!["", " ", "\t", " \n "]),
            double_equals in any::<bool>(),
        ) {
            let text: Vec<String> = reqs.iter().map(|r| r.render(sp, double_equals)).collect();
            let text = text.join(",");
            let sel = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            let expected = reqs.iter().all(|r| r.eval(&labels));
            prop_assert_eq!(sel.matches(&labels), expected, "selector {:?} labels {:?}", text, labels);
            prop_assert_eq!(sel.is_everything(), reqs.is_empty());

            let printed = sel.to_string();
            let reparsed = LabelSelector::parse(&printed);
            prop_assert_eq!(reparsed.as_ref(), Ok(&sel), "printed {:?}", printed);
            prop_assert_eq!(LabelSelector::parse(&printed).map(|s| s.matches(&labels)), Ok(expected));
        }
    }
}
