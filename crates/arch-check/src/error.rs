//! The one error type of the checker: every failure names the file it came from, so a
//! broken tree is reported as "this file, this line" rather than a bare I/O message.

use std::path::PathBuf;

/// Why a crate could not be read. Findings (cycles, forbidden dependencies) are not
/// errors: they are the checker's output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}: `mod {name};` has no file (looked for {})", display_paths(.candidates))]
    MissingModule {
        file: PathBuf,
        line: usize,
        name: String,
        candidates: Vec<PathBuf>,
    },
    #[error("{file}: module files nest deeper than {limit} levels (a `#[path]` loop?)")]
    TooDeep { file: PathBuf, limit: usize },
    #[error("cannot parse {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0} has no Cargo.toml with a [package] or [workspace]")]
    NotAWorkspace(PathBuf),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
