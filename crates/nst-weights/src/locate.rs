//! Where the weights are looked for, decided at run time: nothing about the
//! machine that built the crate is compiled in.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{WeightsError, ENV_VAR, FILE_NAME};

/// The folder, under the current directory, that the lookup searches and
/// [`SearchPlaces::fetch_destination`] prefers.
pub const WEIGHTS_DIR: &str = "weights";

/// What named a candidate weights file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CandidateKind {
    /// A path the caller gave explicitly (a front end's option).
    #[serde(rename = "explicit")]
    Explicit,
    /// The `NST_WEIGHTS` environment variable.
    #[serde(rename = "env")]
    EnvVar,
    /// `weights/vgg19.safetensors` under the current directory.
    #[serde(rename = "current-dir")]
    CurrentDir,
    /// `nst/vgg19.safetensors` in the per-user cache folder.
    #[serde(rename = "user-cache")]
    UserCache,
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Explicit => "the explicit weights path",
            Self::EnvVar => "NST_WEIGHTS",
            Self::CurrentDir => "the current directory",
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
    /// The explicit path or `NST_WEIGHTS` names a file that does not exist.
    /// The search stops there: fetching to another place would not help.
    ExplicitMissing(Candidate),
    /// No file in any of the places searched (in this order). The caller
    /// may fetch the weights to [`SearchPlaces::fetch_destination`].
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

/// What the lookup consults besides an explicit path. [`from_process`]
/// reads them from this process; tests and embedders may give their own.
///
/// [`from_process`]: SearchPlaces::from_process
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPlaces {
    /// The value of `NST_WEIGHTS`, if set; an empty value counts as unset.
    pub env: Option<OsString>,
    /// The current directory: `weights/vgg19.safetensors` is looked for
    /// under it. Relative paths are relative to the process's directory.
    pub current_dir: PathBuf,
    /// The per-user cache folder (`$XDG_CACHE_HOME` or `~/.cache` on
    /// Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), if
    /// the platform has one: `nst/vgg19.safetensors` is looked for under it.
    pub cache_dir: Option<PathBuf>,
}

impl SearchPlaces {
    /// This process's places: `NST_WEIGHTS`, the current directory (`.` if
    /// it cannot be read) and the platform's cache folder.
    pub fn from_process() -> Self {
        Self {
            env: std::env::var_os(ENV_VAR),
            current_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            cache_dir: dirs::cache_dir(),
        }
    }

    /// `weights/vgg19.safetensors` under [`current_dir`](Self::current_dir).
    pub fn current_dir_path(&self) -> PathBuf {
        self.current_dir.join(WEIGHTS_DIR).join(FILE_NAME)
    }

    /// `nst/vgg19.safetensors` under [`cache_dir`](Self::cache_dir).
    pub fn user_cache_path(&self) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join("nst").join(FILE_NAME))
    }

    /// Finds the weights file: `explicit` if given, else [`env`](Self::env)
    /// if set and not empty, else [`current_dir_path`], else
    /// [`user_cache_path`]. The first two must exist if given; the last two
    /// are used if they exist.
    ///
    /// [`current_dir_path`]: Self::current_dir_path
    /// [`user_cache_path`]: Self::user_cache_path
    pub fn locate(&self, explicit: Option<&Path>) -> Located {
        let env = self
            .env
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let named = explicit
            .map(|p| (CandidateKind::Explicit, p.to_path_buf()))
            .or(env.map(|p| (CandidateKind::EnvVar, p)));
        if let Some((kind, path)) = named {
            let c = Candidate { kind, path };
            return if c.path.is_file() {
                Located::Found(c)
            } else {
                Located::ExplicitMissing(c)
            };
        }
        let defaults = [
            (CandidateKind::CurrentDir, Some(self.current_dir_path())),
            (CandidateKind::UserCache, self.user_cache_path()),
        ];
        let mut searched = Vec::new();
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

    /// Where fetched weights go when the caller names no destination:
    /// [`current_dir_path`](Self::current_dir_path) when a `weights` folder
    /// exists in the current directory (a source checkout, where the tests
    /// look), else [`user_cache_path`](Self::user_cache_path), else
    /// `current_dir_path` all the same. Either way [`locate`](Self::locate)
    /// finds the file there afterwards (`NST_WEIGHTS` is not consulted: it
    /// names a file to use, not a place to write).
    pub fn fetch_destination(&self) -> PathBuf {
        if self.current_dir.join(WEIGHTS_DIR).is_dir() {
            return self.current_dir_path();
        }
        self.user_cache_path()
            .unwrap_or_else(|| self.current_dir_path())
    }
}

/// Finds the weights file with this process's [`SearchPlaces`]: `explicit`
/// if given, else `NST_WEIGHTS` if set and not empty, else
/// `weights/vgg19.safetensors` under the current directory, else
/// `nst/vgg19.safetensors` in the per-user cache folder. See
/// [`SearchPlaces::locate`].
pub fn locate(explicit: Option<&Path>) -> Located {
    SearchPlaces::from_process().locate(explicit)
}

/// `nst/vgg19.safetensors` in this user's cache folder, if the platform has
/// one.
pub fn user_cache_path() -> Option<PathBuf> {
    SearchPlaces::from_process().user_cache_path()
}

/// Where fetched weights go by default, with this process's
/// [`SearchPlaces`]; see [`SearchPlaces::fetch_destination`].
pub fn default_fetch_destination() -> PathBuf {
    SearchPlaces::from_process().fetch_destination()
}

/// The weights [`locate`] finds, or, when there are none anywhere, a fresh
/// download to [`default_fetch_destination`], announced through `progress`.
/// A path named explicitly or by `NST_WEIGHTS` that does not exist is an
/// error, never a download.
#[cfg(feature = "fetch")]
pub fn locate_or_fetch(
    explicit: Option<&Path>, progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, WeightsError> {
    let places = SearchPlaces::from_process();
    match places.locate(explicit) {
        Located::NotFound { searched } => {
            let dest = places.fetch_destination();
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
    use super::*;

    /// A folder holding `flag`, `env`, `cwd/weights/vgg19.safetensors` and
    /// `cache/nst/vgg19.safetensors`, and the places pointing into it.
    fn everything() -> (tempfile::TempDir, SearchPlaces) {
        let dir = tempfile::tempdir().unwrap();
        let places = SearchPlaces {
            env: Some(dir.path().join("env").into()),
            current_dir: dir.path().join("cwd"),
            cache_dir: Some(dir.path().join("cache")),
        };
        let files = [
            dir.path().join("flag"),
            dir.path().join("env"),
            places.current_dir_path(),
            places.user_cache_path().unwrap(),
        ];
        for f in files {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        (dir, places)
    }

    fn found(l: Located) -> (CandidateKind, PathBuf) {
        match l {
            Located::Found(c) => (c.kind, c.path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_order() {
        let (dir, mut places) = everything();
        let flag = dir.path().join("flag");
        let cwd_file = places.current_dir_path();
        let cache_file = places.user_cache_path().unwrap();
        assert!(cwd_file.ends_with("cwd/weights/vgg19.safetensors"));
        assert!(cache_file.ends_with("cache/nst/vgg19.safetensors"));
        let order = [
            (Some(flag.as_path()), CandidateKind::Explicit, flag.clone()),
            (None, CandidateKind::EnvVar, dir.path().join("env")),
        ];
        for (explicit, kind, path) in order {
            assert_eq!(found(places.locate(explicit)), (kind, path));
        }
        // An empty variable counts as unset.
        places.env = Some(OsString::new());
        assert_eq!(
            found(places.locate(None)),
            (CandidateKind::CurrentDir, cwd_file.clone())
        );
        std::fs::remove_file(&cwd_file).unwrap();
        assert_eq!(
            found(places.locate(None)),
            (CandidateKind::UserCache, cache_file)
        );
    }

    #[test]
    fn explicit_missing_stops_the_search() {
        let (dir, mut places) = everything();
        let missing = dir.path().join("missing.safetensors");
        places.env = Some(missing.clone().into());
        let l = places.locate(None);
        assert_eq!(
            l,
            Located::ExplicitMissing(Candidate {
                kind: CandidateKind::EnvVar,
                path: missing.clone()
            })
        );
        let e = l.into_result().unwrap_err();
        assert!(e.suggests_fetching());
        let e = e.to_string();
        assert!(e.starts_with("NST_WEIGHTS names"), "{e}");
        assert!(e.contains("unset NST_WEIGHTS"), "{e}");
        assert!(e.contains("fetch the weights"), "{e}");
        let e = places.locate(Some(&missing)).into_result().unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("the explicit weights path names"), "{e}");
        assert!(!e.contains("NST_WEIGHTS") && !e.contains("--"), "{e}");
    }

    #[test]
    fn not_found_lists_the_places() {
        let places = SearchPlaces {
            env: None,
            current_dir: "/nonexistent/cwd".into(),
            cache_dir: Some("/nonexistent/cache".into()),
        };
        let l = places.locate(None);
        let Located::NotFound { ref searched } = l else {
            panic!("{l:?}")
        };
        assert_eq!(searched.len(), 2);
        let e = l.into_result().unwrap_err().to_string();
        for needle in [
            "/nonexistent/cwd/weights/vgg19.safetensors (the current directory)",
            "/nonexistent/cache/nst/vgg19.safetensors (the user cache)",
            "fetch the weights first",
        ] {
            assert!(e.contains(needle), "{needle} missing from {e}");
        }
        // Without a cache folder, only the current directory is searched.
        let places = SearchPlaces {
            cache_dir: None,
            ..places
        };
        let Located::NotFound { searched } = places.locate(None) else {
            panic!()
        };
        assert_eq!(searched.len(), 1);
    }

    #[test]
    fn fetch_destination_prefers_a_weights_folder_then_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut places = SearchPlaces {
            env: Some(dir.path().join("env").into()),
            current_dir: dir.path().to_path_buf(),
            cache_dir: Some(dir.path().join("cache")),
        };
        assert_eq!(
            places.fetch_destination(),
            dir.path().join("cache/nst/vgg19.safetensors")
        );
        places.cache_dir = None;
        assert_eq!(places.fetch_destination(), places.current_dir_path());
        places.cache_dir = Some(dir.path().join("cache"));
        std::fs::create_dir(dir.path().join("weights")).unwrap();
        assert_eq!(
            places.fetch_destination(),
            dir.path().join("weights/vgg19.safetensors")
        );
    }

    #[test]
    fn the_process_places_are_read_at_run_time() {
        let places = SearchPlaces::from_process();
        assert_eq!(places.current_dir, std::env::current_dir().unwrap());
        assert_eq!(places.cache_dir, dirs::cache_dir());
        assert_eq!(user_cache_path(), places.user_cache_path());
        assert_eq!(default_fetch_destination(), places.fetch_destination());
    }

    #[cfg(feature = "fetch")]
    #[test]
    fn locate_or_fetch_never_downloads_for_a_missing_named_path() {
        let mut said = Vec::new();
        let err = locate_or_fetch(
            Some(Path::new("/nonexistent/nst/vgg19.safetensors")),
            &mut |m: &str| said.push(m.to_string()),
        )
        .unwrap_err();
        assert!(said.is_empty(), "it started fetching: {said:?}");
        assert!(
            matches!(&err, WeightsError::ExplicitMissing { candidate }
                if candidate.kind == CandidateKind::Explicit),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("/nonexistent/nst/vgg19.safetensors"),
            "{err}"
        );
    }
}
