//! `--config FILE` for `flotilla server` and `flotilla agent`: a TOML file whose keys are the
//! command's long flag names (`name = "n1"`, `initial-cluster = "n1=http://…,…"`,
//! `election-timeout = 1000`, `allow-privileged = true`, `server = ["http://a:6443", …]`).
//!
//! The file is expanded into flags before the command line is parsed, so it accepts exactly
//! what the flags accept and a misspelt key fails like a misspelt flag. Precedence: a flag on
//! the command line, then the file, then `FLOTILLA_*` environment variables, then defaults.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context};

/// `args` with every `--config FILE` followed by the flags the file sets that the command
/// line does not already give. `--config` itself stays (it is a documented, ignored flag).
pub fn expand(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some((at, path)) = find_config(&args) else { return Ok(args) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading config file {}", path.display()))?;
    let flags = flags_of(&text, &args).with_context(|| format!("config file {}", path.display()))?;
    let mut out = args;
    let insert_at = at + 1;
    out.splice(insert_at..insert_at, flags.into_iter().map(OsString::from));
    Ok(out)
}

/// Index of the last argument of the `--config` flag, and the file it names.
fn find_config(args: &[OsString]) -> Option<(usize, std::path::PathBuf)> {
    let pos = args.iter().position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))?;
    let arg = args[pos].to_string_lossy();
    match arg.strip_prefix("--config=") {
        Some(p) => Some((pos, Path::new(p).to_path_buf())),
        None => args.get(pos + 1).map(|p| (pos + 1, Path::new(p).to_path_buf())),
    }
}

/// The flags a config file's table sets, skipping those `given` on the command line.
fn flags_of(text: &str, given: &[OsString]) -> anyhow::Result<Vec<String>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let on_command_line = |key: &str| {
        given.iter().any(|a| a.to_str().is_some_and(|a| a == format!("--{key}") || a.starts_with(&format!("--{key}="))))
    };
    let mut flags = Vec::new();
    for (key, value) in table {
        if key == "config" {
            bail!("`config` cannot name another config file");
        }
        if on_command_line(&key) {
            continue;
        }
        let value = match value {
            toml::Value::Boolean(true) => {
                flags.push(format!("--{key}"));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => items.iter().map(scalar).collect::<anyhow::Result<Vec<_>>>()?.join(","),
            other => bail!("key `{key}`: a {} is not a flag value", other.type_str()),
        };
        flags.push(format!("--{key}={value}"));
    }
    Ok(flags)
}

fn scalar(v: &toml::Value) -> anyhow::Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        other => bail!("a list may hold strings and integers, not a {}", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_keys_become_flags_after_config_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "name = \"n1\"\nelection-timeout = 1500\nunsafe-thing = false\nforce-new-cluster = true\n\
             server = [\"http://a:6443\", \"http://b:6443\"]\ndata-dir = \"/var/lib/flotilla\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let out = expand(args(&["flotilla", "server", "--config", p, "--name", "cli"])).unwrap();
        let got: Vec<String> = out.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            got,
            [
                "flotilla",
                "server",
                "--config",
                p,
                "--data-dir=/var/lib/flotilla",
                "--election-timeout=1500",
                "--force-new-cluster",
                "--server=http://a:6443,http://b:6443",
                "--name",
                "cli"
            ]
        );
        let eq = expand(args(&["flotilla", "agent", &format!("--config={p}")])).unwrap();
        assert_eq!(eq[3], "--data-dir=/var/lib/flotilla");
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "name = [\n").unwrap();
        let err = expand(args(&["flotilla", "server", "--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("not valid TOML"), "{err:#}");
        std::fs::write(&path, "[table]\nx = 1\n").unwrap();
        let err = expand(args(&["flotilla", "server", "--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("key `table`"), "{err:#}");
        let err = expand(args(&["flotilla", "server", "--config", "/nonexistent.toml"])).unwrap_err();
        assert!(format!("{err:#}").contains("reading config file"), "{err:#}");
        assert_eq!(expand(args(&["flotilla", "status"])).unwrap(), args(&["flotilla", "status"]));
    }
}
