//! Launcher keys: the same MCP server started by `npx`, `npm exec` (npm's process
//! title) or `uvx` gets one key, so its instances can be counted as duplicates.

/// A normalised command line: launcher first, then what it runs, flags for the
/// launcher itself dropped.
pub fn normalise(cmdline: &str) -> Vec<&str> {
    let mut tokens: Vec<&str> = cmdline.split_whitespace().collect();
    // `/usr/bin/env node /usr/bin/npx …` (npx's first 5 ms), `node /usr/bin/npx …`:
    // the interpreter says nothing about the server.
    while tokens.len() > 1 && is_interpreter(tokens[0]) && !tokens[1].starts_with('-') {
        tokens.remove(0);
    }
    let Some(first) = tokens.first_mut() else {
        return tokens;
    };
    *first = program_name(first);
    let (launcher, skip) = match tokens.as_slice() {
        ["npx", ..] => ("npm exec", 1),
        ["npm", "exec" | "x", ..] => ("npm exec", 2),
        ["uvx", ..] => ("uvx", 1),
        ["uv", "tool", "uvx" | "run", ..] => ("uvx", 3),
        _ => return tokens,
    };
    let mut key = vec![launcher];
    key.extend(drop_launcher_flags(&tokens[skip..]));
    key
}

/// The key of a command line if it matches one of `patterns`, else None.
pub fn key(cmdline: &str, patterns: &[String]) -> Option<String> {
    let tokens = normalise(cmdline);
    patterns
        .iter()
        .any(|p| {
            let pattern = normalise(p);
            !pattern.is_empty() && tokens.starts_with(&pattern) && tokens.len() > pattern.len()
        })
        .then(|| tokens.join(" "))
}

fn is_interpreter(token: &str) -> bool {
    let name = token.rsplit('/').next().unwrap_or(token);
    matches!(name, "env" | "node" | "nodejs" | "bun") || name.starts_with("python")
}

/// `/usr/lib/node_modules/npm/bin/npx-cli.js` -> `npx`.
fn program_name(token: &str) -> &str {
    let name = token.rsplit('/').next().unwrap_or(token);
    let name = name.strip_suffix(".js").unwrap_or(name);
    name.strip_suffix("-cli").unwrap_or(name)
}

/// Flags before the package belong to the launcher (`-y`, `--yes`, `--`); the package
/// named by `-p`/`--package`/`--from` is kept. Everything from the package on is the
/// server's own command line and kept as it is.
fn drop_launcher_flags<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    const WITH_VALUE: &[&str] = &[
        "-p",
        "--package",
        "--from",
        "--with",
        "--python",
        "-c",
        "--call",
    ];
    let mut kept = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let token = rest[i];
        if token == "--" {
            i += 1;
            break;
        }
        if !token.starts_with('-') {
            break;
        }
        if WITH_VALUE.contains(&token) {
            kept.extend(rest.get(i + 1));
            i += 2;
        } else {
            if let Some((flag, value)) = token.split_once('=') {
                if WITH_VALUE.contains(&flag) {
                    kept.push(value);
                }
            }
            i += 1;
        }
    }
    kept.extend(&rest[i.min(rest.len())..]);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::defaults;

    #[test]
    fn npm_title_and_raw_npx_share_a_key() {
        let forms = [
            "npm exec @modelcontextprotocol/server-everything",
            "node /usr/bin/npx -y @modelcontextprotocol/server-everything",
            "node /usr/local/lib/node_modules/npm/bin/npx-cli.js --yes @modelcontextprotocol/server-everything",
            "npx -y -- @modelcontextprotocol/server-everything",
            "/usr/bin/env node /usr/bin/npx -y @modelcontextprotocol/server-everything",
            "npm x --yes @modelcontextprotocol/server-everything",
        ];
        for form in forms {
            assert_eq!(
                key(form, &defaults()).as_deref(),
                Some("npm exec @modelcontextprotocol/server-everything"),
                "{form}"
            );
        }
    }

    #[test]
    fn server_arguments_are_part_of_the_key() {
        let a = key("npm exec @x/fs /data", &defaults());
        let b = key("npm exec @x/fs /other", &defaults());
        assert_ne!(a, b);
        assert_eq!(
            key("npx -y @x/fs -y /data", &defaults()).unwrap(),
            "npm exec @x/fs -y /data"
        );
    }

    #[test]
    fn uvx_forms() {
        for form in [
            "uvx mcp-server-time",
            "/opt/uv/bin/uv tool uvx mcp-server-time",
            "uv tool run mcp-server-time",
        ] {
            assert_eq!(
                key(form, &defaults()).as_deref(),
                Some("uvx mcp-server-time"),
                "{form}"
            );
        }
        assert_eq!(
            key("uvx --from mcp-time mcp-server-time --tz UTC", &defaults()).as_deref(),
            Some("uvx mcp-time mcp-server-time --tz UTC")
        );
    }

    #[test]
    fn non_launchers_have_no_key() {
        for form in [
            "sh -c mcp-server-everything",
            "node /root/.npm/_npx/abc/node_modules/.bin/mcp-server-everything",
            "npm exec",
            "npm",
            "npm install foo",
            "sh -c 'mcp-server-everything' stdio",
            "",
        ] {
            assert_eq!(key(form, &defaults()), None, "{form}");
        }
        assert_eq!(key("npm exec @x/y", &[]), None);
    }

    #[test]
    fn custom_patterns() {
        let patterns = vec!["python -m".to_string(), "docker run".to_string()];
        assert_eq!(
            key("docker run -i mcp/time", &patterns).as_deref(),
            Some("docker run -i mcp/time")
        );
        assert_eq!(key("npx @x/y", &patterns), None);
        let npx_only = vec!["npx".to_string()];
        assert!(
            key("npm exec @x/y", &npx_only).is_some(),
            "npx and npm exec are one launcher"
        );
    }
}
