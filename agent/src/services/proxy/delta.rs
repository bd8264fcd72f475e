//! Incremental applies: from the script in place and the next one (both from
//! [`super::render`]), the nft commands that turn the first table into the second touching
//! only what changed — kube-proxy's "partial sync". A full script reloads every chain and
//! map element (about a second per sync with 1,000 Services × 10 endpoints); a change to
//! one Service's endpoints rewrites that Service port's chains and map elements only.
//!
//! The result is two transactions:
//! 1. declare the new chains and sets; rewrite every chain whose rules changed (`flush
//!    chain` + its rules) and empty the chains that are going; delete the map and set
//!    elements that went or changed, then add the new ones. nft applies it all or nothing,
//!    so traffic sees the old table or the new one;
//! 2. delete the chains, then the sets, the new script no longer declares: they are empty
//!    and unreferenced after 1 (a failure here leaves only inert leftovers, which the next
//!    full apply's sweep removes).
//!
//! Invariant: after both, the table holds exactly what applying the new script in full
//! would leave (tested against real nftables in `agent/tests/proxy_nft.rs`). When that is
//! not certain — another table, a set whose properties changed — [`delta`] returns `None`
//! and the caller applies the full script.

use std::collections::{BTreeMap, BTreeSet};

/// One chain, set or map of a script's table block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Block {
    /// A chain's rules (with a base chain's hook line first), or a set's properties.
    lines: Vec<String>,
    /// A set's or map's elements.
    elements: BTreeSet<String>,
}

/// The table a script programs: its name and its objects by (kind, name).
#[derive(Debug, Default)]
struct Table {
    name: String,
    blocks: BTreeMap<(String, String), Block>,
}

/// Read the table block of a script in [`super::render`]'s layout: objects at one tab,
/// their lines at two, elements at three.
fn parse(script: &str) -> Option<Table> {
    let name = script.lines().next()?.strip_prefix("add table ip ")?.to_string();
    let mut table = Table { name, blocks: BTreeMap::new() };
    let mut current: Option<((String, String), Block)> = None;
    let mut in_elements = false;
    let body = script.lines().skip_while(|l| !l.starts_with("table ip ")).skip(1);
    for line in body {
        if line == "}" {
            break;
        }
        if let Some(head) = line.strip_prefix('\t').filter(|l| !l.starts_with('\t')) {
            if head == "}" {
                let (key, block) = current.take()?;
                table.blocks.insert(key, block);
                continue;
            }
            let (kind, name) = head.strip_suffix(" {")?.split_once(' ')?;
            current = Some(((kind.to_string(), name.to_string()), Block::default()));
            continue;
        }
        let (_, block) = current.as_mut()?;
        let text = line.trim_start_matches('\t');
        if text == "elements = {" {
            in_elements = true;
        } else if in_elements && text == "}" {
            in_elements = false;
        } else if in_elements {
            block.elements.insert(text.trim_end_matches(',').to_string());
        } else if !text.is_empty() && text != "}" {
            block.lines.push(text.to_string());
        }
    }
    Some(table)
}

/// The two transactions (see the module doc) that turn `old`'s table into `new`'s; `None`
/// when only a full apply of `new` is certain to be right.
pub fn delta(old: &str, new: &str) -> Option<(String, String)> {
    let (old, new) = (parse(old)?, parse(new)?);
    if old.name != new.name {
        return None;
    }
    let t = &new.name;
    let (mut declare, mut rewrite, mut elements, mut deletes) =
        (String::new(), String::new(), String::new(), String::new());
    for ((kind, name), block) in &new.blocks {
        let before = old.blocks.get(&(kind.clone(), name.clone()));
        match (kind.as_str(), before) {
            ("chain", None) => {
                declare += &format!("add chain ip {t} {name}\n");
                rewrite += &object(t, kind, name, block);
            }
            ("chain", Some(b)) if b.lines != block.lines => {
                rewrite += &format!("flush chain ip {t} {name}\n");
                rewrite += &object(t, kind, name, block);
            }
            ("chain", Some(_)) => {}
            (_, None) => {
                declare += &object(t, kind, name, block);
                elements += &add_elements(t, name, block.elements.iter());
            }
            (_, Some(b)) if b.lines != block.lines => return None,
            (_, Some(b)) => {
                let gone: Vec<&String> = b.elements.difference(&block.elements).collect();
                if !gone.is_empty() {
                    let keys: Vec<&str> = gone.iter().map(|e| e.split(" : ").next().unwrap_or(e)).collect();
                    elements += &format!("delete element ip {t} {name} {{ {} }}\n", keys.join(", "));
                }
                elements += &add_elements(t, name, block.elements.difference(&b.elements));
            }
        }
    }
    // Chains before sets: a set may be used by a chain being deleted in the same batch.
    for kind in ["chain", "set", "map"] {
        let going: Vec<&String> = old
            .blocks
            .keys()
            .filter(|(k, n)| k == kind && !new.blocks.contains_key(&(k.clone(), n.clone())))
            .map(|(_, n)| n)
            .collect();
        for name in going {
            if kind == "chain" {
                rewrite += &format!("flush chain ip {t} {name}\n");
            }
            deletes += &format!("delete {kind} ip {t} {name}\n");
        }
    }
    Some((declare + &rewrite + &elements, deletes))
}

/// A chain with its rules (appended: the caller flushed or just declared it), or a set
/// with its properties (its elements are added separately).
fn object(table: &str, kind: &str, name: &str, block: &Block) -> String {
    let mut out = format!("table ip {table} {{\n\t{kind} {name} {{\n");
    for line in &block.lines {
        out += &format!("\t\t{line}\n");
    }
    out + "\t}\n}\n"
}

fn add_elements<'a>(table: &str, name: &str, elements: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = elements.map(String::as_str).collect();
    if list.is_empty() {
        return String::new();
    }
    format!("add element ip {table} {name} {{ {} }}\n", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "add table ip t\nflush table ip t\ntable ip t {\n\tmap m {\n\t\ttype x\n\t\telements = {\n\t\t\ta : goto c1,\n\t\t\tb : goto c2\n\t\t}\n\t}\n\tchain c1 {\n\t\tr1\n\t}\n\tchain c2 {\n\t\tr2\n\t}\n\tchain base {\n\t\thook line;\n\t\tjump c1\n\t}\n}\n";

    #[test]
    fn parses_the_rendered_layout() {
        let t = parse(OLD).expect("parses");
        assert_eq!(t.name, "t");
        let m = &t.blocks[&("map".to_string(), "m".to_string())];
        assert_eq!(m.lines, vec!["type x"]);
        assert_eq!(m.elements, BTreeSet::from(["a : goto c1".to_string(), "b : goto c2".to_string()]));
        assert_eq!(t.blocks[&("chain".to_string(), "base".to_string())].lines, vec!["hook line;", "jump c1"]);
    }

    #[test]
    fn only_what_changed_is_touched() {
        assert_eq!(delta(OLD, OLD), Some((String::new(), String::new())), "nothing changed, nothing to do");
        // c2 goes (with its element), c3 comes, c1's rules change; base stays.
        let new = OLD
            .replace("\t\t\tb : goto c2\n", "\t\t\tc : goto c3\n")
            .replace("\tchain c2 {\n\t\tr2\n\t}\n", "\tchain c3 {\n\t\tr3\n\t}\n")
            .replace("\t\tr1\n", "\t\tr1b\n");
        let (change, deletes) = delta(OLD, &new).expect("a delta");
        assert_eq!(
            change,
            "add chain ip t c3\n\
             flush chain ip t c1\ntable ip t {\n\tchain c1 {\n\t\tr1b\n\t}\n}\n\
             table ip t {\n\tchain c3 {\n\t\tr3\n\t}\n}\n\
             flush chain ip t c2\n\
             delete element ip t m { b }\nadd element ip t m { c : goto c3 }\n"
        );
        assert_eq!(deletes, "delete chain ip t c2\n");
    }

    #[test]
    fn another_table_or_changed_set_properties_need_a_full_apply() {
        assert_eq!(delta(OLD, &OLD.replace("table ip t", "table ip u")), None);
        assert_eq!(delta(OLD, &OLD.replace("type x", "type y")), None);
    }
}
