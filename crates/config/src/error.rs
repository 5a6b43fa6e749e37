//! Startup errors. Each names the file and, where the cause can be pinned down, the key or
//! variable and its line and column, so an operator can fix the file without guessing.

/// Why the configuration could not be loaded. Lines and columns are 1-based.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{file}:{line}:{column}: environment variable `{}` is not set and its `${{...}}` reference has no default",
        .name.escape_debug()
    )]
    UnsetVariable {
        file: String,
        name: String,
        line: usize,
        column: usize,
    },

    #[error("{file}:{line}:{column}: `${{}}` names no environment variable and has no default")]
    EmptyVariableName {
        file: String,
        line: usize,
        column: usize,
    },

    #[error("{file}:{line}:{column}: `${{` has no closing `}}`")]
    UnterminatedVariable {
        file: String,
        line: usize,
        column: usize,
    },

    /// Invalid YAML, or a value or key the file's shape does not allow. `message` starts with the
    /// key path (for example `workers[1].config.limits`) when the YAML parser knows it.
    #[error("{file}{}: {message}", at(.line, .column))]
    Yaml {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// A rule that spans several values or entries, so it has no single location.
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

fn at(line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

impl ConfigError {
    pub(crate) fn from_yaml(file: &str, error: &serde_yaml::Error) -> Self {
        let mut message = error.to_string();
        let (line, column) = match error.location() {
            Some(location) => {
                // serde_yaml appends the location to its message; it is moved to the front instead,
                // in the `file:line:column` form editors and terminals recognise.
                let suffix = format!(" at line {} column {}", location.line(), location.column());
                if let Some(index) = message.find(&suffix) {
                    message.replace_range(index..index + suffix.len(), "");
                }
                (Some(location.line()), Some(location.column()))
            }
            None => (None, None),
        };
        ConfigError::Yaml {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}
