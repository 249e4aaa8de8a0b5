//! Where the weights are looked for.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{WeightsError, ENV_VAR, FILE_NAME};

/// What named a candidate weights file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CandidateKind {
    /// The command line's `--weights PATH`.
    #[serde(rename = "flag")]
    Flag,
    /// The `NST_WEIGHTS` environment variable.
    #[serde(rename = "env")]
    EnvVar,
    /// `weights/vgg19.safetensors` in the workspace this crate was built in.
    #[serde(rename = "workspace")]
    Workspace,
    /// `vgg19.safetensors` in the per-user cache folder ([`user_cache_path`]).
    #[serde(rename = "user-cache")]
    UserCache,
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--weights",
            Self::EnvVar => "NST_WEIGHTS",
            Self::Workspace => "the workspace",
            Self::UserCache => "the user cache",
        })
    }
}

/// A place weights may be, and what named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// What named the place.
    pub kind: CandidateKind,
    /// The file.
    pub path: PathBuf,
}

/// The outcome of [`locate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// A weights file exists here.
    Found(Candidate),
    /// `--weights` or `NST_WEIGHTS` names a file that does not exist. The
    /// search stops there: fetching to another place would not help.
    ExplicitMissing(Candidate),
    /// No file in any of the places searched (in this order). The caller
    /// may [`fetch`](crate::fetch) to [`default_fetch_destination`], or tell
    /// the user to run [`FETCH_COMMAND`](crate::FETCH_COMMAND).
    NotFound {
        /// The places searched.
        searched: Vec<Candidate>,
    },
}

impl Located {
    /// The file found, or the error to show ([`WeightsError::ExplicitMissing`]
    /// or [`WeightsError::NotFound`], both naming the fix).
    pub fn into_result(self) -> Result<PathBuf, WeightsError> {
        match self {
            Located::Found(c) => Ok(c.path),
            Located::ExplicitMissing(candidate) => Err(WeightsError::ExplicitMissing { candidate }),
            Located::NotFound { searched } => Err(WeightsError::NotFound { searched }),
        }
    }
}

/// Finds the weights file: `explicit` (the `--weights` flag) if given, else
/// the `NST_WEIGHTS` environment variable if set and not empty, else
/// [`workspace_path`], else [`user_cache_path`]. The first two must exist if
/// given; the last two are used if they exist.
pub fn locate(explicit: Option<&Path>) -> Located {
    locate_in(
        explicit,
        std::env::var_os(ENV_VAR),
        Some(workspace_path()),
        user_cache_path(),
    )
}

pub(crate) fn locate_in(
    explicit: Option<&Path>,
    env: Option<OsString>,
    workspace: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Located {
    let env = env.filter(|v| !v.is_empty()).map(PathBuf::from);
    let named = explicit
        .map(|p| (CandidateKind::Flag, p.to_path_buf()))
        .or(env.map(|p| (CandidateKind::EnvVar, p)));
    if let Some((kind, path)) = named {
        let c = Candidate { kind, path };
        return if c.path.is_file() {
            Located::Found(c)
        } else {
            Located::ExplicitMissing(c)
        };
    }
    let mut searched = Vec::new();
    let defaults = [
        (CandidateKind::Workspace, workspace),
        (CandidateKind::UserCache, cache),
    ];
    for (kind, path) in defaults {
        let Some(path) = path else { continue };
        let c = Candidate { kind, path };
        if c.path.is_file() {
            return Located::Found(c);
        }
        searched.push(c);
    }
    Located::NotFound { searched }
}

/// The workspace this crate was built in (two folders above its manifest).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// `weights/vgg19.safetensors` in the workspace `nst` was built in.
pub fn workspace_path() -> PathBuf {
    workspace_root().join("weights").join(FILE_NAME)
}

/// `nst/vgg19.safetensors` in the per-user cache folder (`$XDG_CACHE_HOME`
/// or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
/// Windows), if the platform has one.
pub fn user_cache_path() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("nst").join(FILE_NAME))
}

/// Where `nst weights fetch` writes by default: [`workspace_path`] when
/// running from a source checkout (the workspace's `Cargo.toml` exists, so
/// tests and CI find the file there), else [`user_cache_path`], else
/// `vgg19.safetensors` in the current folder.
pub fn default_fetch_destination() -> PathBuf {
    if workspace_root().join("Cargo.toml").is_file() {
        return workspace_path();
    }
    user_cache_path().unwrap_or_else(|| PathBuf::from(FILE_NAME))
}

/// What the main command calls: the weights [`locate`] finds, or, when there are none anywhere,
/// a fresh download to [`default_fetch_destination`], announced through `progress`. A path
/// named by `--weights` or `NST_WEIGHTS` that does not exist is an error, never a download.
/// When fetching is impossible, the error names `nst weights fetch` and what to fix first.
pub fn locate_or_fetch(
    explicit: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, WeightsError> {
    match locate(explicit) {
        Located::NotFound { searched } => {
            let dest = default_fetch_destination();
            let looked: Vec<String> = searched
                .iter()
                .map(|c| c.path.display().to_string())
                .collect();
            progress(&format!(
                "no VGG-19 weights found (looked in {}); fetching them to {}",
                looked.join(", "),
                dest.display()
            ));
            crate::fetch(&dest, progress)?;
            Ok(dest)
        }
        other => other.into_result(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn locate_or_fetch_never_downloads_for_a_missing_named_path() {
        let mut said = Vec::new();
        let err = super::locate_or_fetch(
            Some(std::path::Path::new("/nonexistent/nst/vgg19.safetensors")),
            &mut |m: &str| said.push(m.to_string()),
        )
        .unwrap_err();
        assert!(said.is_empty(), "it started fetching: {said:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/nst/vgg19.safetensors") && msg.contains("nst weights fetch"),
            "{msg}"
        );
    }

    use super::*;

    #[test]
    fn search_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        for n in ["flag", "env", "ws", "cache"] {
            std::fs::write(p(n), b"x").unwrap();
        }
        let ws = Some(p("ws"));
        let cache = Some(p("cache"));
        let found = |l: Located| match l {
            Located::Found(c) => (c.kind, c.path),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            found(locate_in(
                Some(&p("flag")),
                Some(p("env").into()),
                ws.clone(),
                cache.clone()
            )),
            (CandidateKind::Flag, p("flag"))
        );
        assert_eq!(
            found(locate_in(
                None,
                Some(p("env").into()),
                ws.clone(),
                cache.clone()
            )),
            (CandidateKind::EnvVar, p("env"))
        );
        // An empty variable counts as unset.
        assert_eq!(
            found(locate_in(
                None,
                Some(OsString::new()),
                ws.clone(),
                cache.clone()
            )),
            (CandidateKind::Workspace, p("ws"))
        );
        assert_eq!(
            found(locate_in(None, None, Some(p("nope")), cache.clone())),
            (CandidateKind::UserCache, p("cache"))
        );
    }

    #[test]
    fn explicit_missing_stops_the_search() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::write(&ws, b"x").unwrap();
        let missing = dir.path().join("missing.safetensors");
        let l = locate_in(None, Some(missing.clone().into()), Some(ws.clone()), None);
        assert_eq!(
            l,
            Located::ExplicitMissing(Candidate {
                kind: CandidateKind::EnvVar,
                path: missing.clone()
            })
        );
        let e = l.into_result().unwrap_err().to_string();
        assert!(e.contains("NST_WEIGHTS names"), "{e}");
        assert!(e.contains("unset NST_WEIGHTS"), "{e}");
        assert!(e.contains("nst weights fetch"), "{e}");
        let l = locate_in(Some(&missing), None, Some(ws), None);
        let e = l.into_result().unwrap_err().to_string();
        assert!(e.starts_with("--weights names"), "{e}");
    }

    #[test]
    fn not_found_lists_the_places() {
        let l = locate_in(
            None,
            None,
            Some("/nonexistent/ws.safetensors".into()),
            Some("/nonexistent/cache.safetensors".into()),
        );
        let Located::NotFound { ref searched } = l else {
            panic!("{l:?}")
        };
        assert_eq!(searched.len(), 2);
        let e = l.into_result().unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/ws.safetensors (the workspace)"),
            "{e}"
        );
        assert!(
            e.contains("/nonexistent/cache.safetensors (the user cache)"),
            "{e}"
        );
        assert!(e.contains("Run `nst weights fetch`"), "{e}");
    }

    #[test]
    fn workspace_path_is_in_this_workspace() {
        let p = workspace_path();
        assert!(p.ends_with("weights/vgg19.safetensors"));
        assert!(p
            .parent()
            .and_then(Path::parent)
            .is_some_and(|ws| ws.join("Cargo.toml").is_file()));
        assert_eq!(default_fetch_destination(), p);
    }
}
