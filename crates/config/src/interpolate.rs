//! `${NAME}` / `${NAME:default}` expansion over the raw file text (stream.md §9.2).
//!
//! Expansion happens before YAML parsing so a reference can produce any YAML (`port: ${P:3112}`
//! becomes an integer). It is purely textual: comments are expanded too and there is no escape
//! syntax, as in the original. Substituted text is not scanned again, so a value containing `${`
//! is used verbatim instead of recursing.
//!
//! Because YAML is parsed after expansion, YAML error positions refer to the expanded text; they
//! differ from the file only when a substituted value spans several lines.

use crate::error::ConfigError;

/// A default of exactly this text expands to the server's version.
pub(crate) const VERSION_PLACEHOLDER: &str = "__III_ENGINE_VERSION__";

/// The server's version, as substituted for [`VERSION_PLACEHOLDER`].
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Expands every reference in `text`; `source` names the file in errors.
///
/// A variable that is set wins even when empty, so `${X:dflt}` with `X=""` yields an empty
/// string. `${` without a later `}` is an error rather than literal text: with no escape syntax it
/// can only be a broken reference, and passing it through would hide the mistake.
pub(crate) fn expand(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    while let Some(found) = text[cursor..].find("${") {
        let start = cursor + found;
        out.push_str(&text[cursor..start]);
        let body_start = start + 2;
        let Some(body_len) = text[body_start..].find('}') else {
            let (line, column) = position(text, start);
            return Err(ConfigError::UnterminatedVariable {
                file: source.to_owned(),
                line,
                column,
            });
        };
        let body = &text[body_start..body_start + body_len];
        let (name, default) = match body.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        // No environment variable can have an empty name; asking would only invite a
        // platform-specific answer.
        let value = if name.is_empty() { None } else { env(name) };
        match (value, default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(VERSION_PLACEHOLDER)) => out.push_str(VERSION),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                let (line, column) = position(text, start);
                let file = source.to_owned();
                return Err(if name.is_empty() {
                    ConfigError::EmptyVariableName { file, line, column }
                } else {
                    ConfigError::UnsetVariable {
                        file,
                        name: name.to_owned(),
                        line,
                        column,
                    }
                });
            }
        }
        cursor = body_start + body_len + 1;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

/// 1-based line and column (in characters) of byte offset `at`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn run(
        text: &str,
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<String, ConfigError> {
        expand(text, "test.yaml", &env_of(pairs))
    }

    #[test]
    fn text_without_references_is_unchanged() {
        assert_eq!(
            run("a: 1\n$ {x} $x }\n", &[]).unwrap(),
            "a: 1\n$ {x} $x }\n"
        );
    }

    #[test]
    fn default_used_when_unset() {
        assert_eq!(run("port: ${STREAM_PORT:3112}", &[]).unwrap(), "port: 3112");
    }

    #[test]
    fn environment_wins_over_default() {
        assert_eq!(
            run("port: ${STREAM_PORT:3112}", &[("STREAM_PORT", "4000")]).unwrap(),
            "port: 4000"
        );
        assert_eq!(run("v: ${A}", &[("A", "x")]).unwrap(), "v: x");
    }

    #[test]
    fn variable_set_to_empty_wins() {
        assert_eq!(run("v: [${A:dflt}]", &[("A", "")]).unwrap(), "v: []");
    }

    #[test]
    fn empty_default() {
        assert_eq!(run("v: [${A:}]", &[]).unwrap(), "v: []");
    }

    #[test]
    fn default_runs_from_first_colon_to_next_brace() {
        assert_eq!(
            run("url: ${URL:redis://h:6379/0}x", &[]).unwrap(),
            "url: redis://h:6379/0x"
        );
    }

    #[test]
    fn version_placeholder() {
        assert_eq!(
            run("v: ${VER:__III_ENGINE_VERSION__}", &[]).unwrap(),
            format!("v: {}", env!("CARGO_PKG_VERSION"))
        );
        // Only a default that is exactly the placeholder is replaced.
        assert_eq!(
            run("v: ${VER:x__III_ENGINE_VERSION__}", &[]).unwrap(),
            "v: x__III_ENGINE_VERSION__"
        );
        assert_eq!(
            run("v: ${VER:__III_ENGINE_VERSION__}", &[("VER", "9")]).unwrap(),
            "v: 9"
        );
    }

    #[test]
    fn expands_in_comments_and_repeatedly() {
        assert_eq!(
            run("# ${A:a} ${B:b}\nk: ${A:a}${A:a}\n", &[]).unwrap(),
            "# a b\nk: aa\n"
        );
    }

    #[test]
    fn substituted_values_are_not_expanded_again() {
        assert_eq!(run("v: ${A}", &[("A", "${B}")]).unwrap(), "v: ${B}");
    }

    #[test]
    fn unset_variable_error_names_variable_and_position() {
        let error = run("a: 1\nb: x ${UNSET_VAR}\n", &[]).unwrap_err();
        match &error {
            ConfigError::UnsetVariable {
                file,
                name,
                line,
                column,
            } => {
                assert_eq!(file, "test.yaml");
                assert_eq!(name, "UNSET_VAR");
                assert_eq!((*line, *column), (2, 6));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "test.yaml:2:6: environment variable `UNSET_VAR` is not set and its `${...}` reference has no default"
        );
    }

    #[test]
    fn column_counts_characters() {
        let error = run("é: ${NOPE}", &[]).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::UnsetVariable {
                line: 1,
                column: 4,
                ..
            }
        ));
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        let error = run("a: 1\n  b: ${OPEN:x\n", &[]).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::UnterminatedVariable {
                line: 2,
                column: 6,
                ..
            }
        ));
        assert_eq!(error.to_string(), "test.yaml:2:6: `${` has no closing `}`");
    }

    #[test]
    fn empty_name() {
        assert_eq!(run("v: ${:d}", &[("", "never")]).unwrap(), "v: d");
        let error = run("v: ${}", &[]).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::EmptyVariableName {
                line: 1,
                column: 4,
                ..
            }
        ));
    }

    #[test]
    fn odd_names_are_looked_up_verbatim_and_never_panic() {
        let error = run("v: ${A\nB}", &[]).unwrap_err();
        match error {
            ConfigError::UnsetVariable { name, line, .. } => {
                assert_eq!(name, "A\nB");
                assert_eq!(line, 1);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(run("v: ${ A :b}", &[]).unwrap(), "v: b");
        assert_eq!(run("$${A:x}}", &[]).unwrap(), "$x}");
        assert!(run("${", &[]).is_err());
        assert!(run("$", &[]).is_ok());
    }
}
