//! `new-model PATH`: writes a model crate of one's own, outside any workspace, that depends
//! on the guest SDK and builds into a component both hosts run.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::exit::UsageError;

const CARGO_TOML: &str = include_str!("../template/Cargo.toml.in");
const LIB_RS: &str = include_str!("../template/lib.rs.in");
const README: &str = include_str!("../template/README.md.in");
const GITIGNORE: &str = include_str!("../template/gitignore.in");

/// Where the new crate takes the guest SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A directory holding the SDK crate (`guest/sdk` of a ds checkout).
    Path(PathBuf),
    /// A git repository holding the ds workspace, at `rev` (a commit, tag or branch) if
    /// given.
    Git {
        /// The repository URL.
        url: String,
        /// The revision.
        rev: Option<String>,
    },
    /// A version from the registry (crates.io).
    Version(String),
}

impl SdkSource {
    /// The default: the SDK of the checkout this binary was built from, if it is still
    /// there, else this binary's own version from the registry.
    pub fn default_for_this_build() -> SdkSource {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/sdk");
        match checkout.join("Cargo.toml").is_file() {
            true => SdkSource::Path(checkout.canonicalize().unwrap_or(checkout)),
            false => SdkSource::Version(env!("CARGO_PKG_VERSION").into()),
        }
    }

    /// The dependency line of `Cargo.toml`.
    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(path) => format!(
                "ds-guest-sdk = {{ path = {} }}",
                toml_string(&path.to_string_lossy())
            ),
            SdkSource::Git { url, rev: None } => {
                format!("ds-guest-sdk = {{ git = {} }}", toml_string(url))
            }
            SdkSource::Git {
                url,
                rev: Some(rev),
            } => format!(
                "ds-guest-sdk = {{ git = {}, rev = {} }}",
                toml_string(url),
                toml_string(rev)
            ),
            SdkSource::Version(version) => format!("ds-guest-sdk = {}", toml_string(version)),
        }
    }
}

/// Writes the model crate `name` (default: the directory's name) at `path` and returns what
/// was written, for the output. `path` must not exist or be an empty directory: nothing of
/// the user's is ever overwritten.
pub fn new_model(path: &Path, name: Option<&str>, sdk: &SdkSource) -> anyhow::Result<Value> {
    let name = match name {
        Some(name) => name.to_string(),
        None => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .ok_or_else(|| {
                UsageError(format!(
                    "{} has no directory name to name the crate by; give --name",
                    path.display()
                ))
            })?,
    };
    check_crate_name(&name)?;
    if let SdkSource::Path(dir) = sdk
        && !dir.join("Cargo.toml").is_file()
    {
        return Err(UsageError(format!(
            "--sdk-path {}: no Cargo.toml there (the SDK is guest/sdk of a ds checkout)",
            dir.display()
        ))
        .into());
    }
    let empty_dir = match fs::read_dir(path) {
        Ok(mut entries) => match entries.next() {
            None => true,
            Some(_) => {
                return Err(UsageError(format!(
                    "{} exists and is not empty; give a new directory",
                    path.display()
                ))
                .into());
            }
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let crate_name = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk.dependency())
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
        (".gitignore", fill(GITIGNORE)),
    ];
    // Written next to `path` and renamed into place, so a failure leaves no half crate.
    let staging = match empty_dir {
        true => path.to_path_buf(),
        false => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            parent.join(format!(".{name}.new-model-{}", std::process::id()))
        }
    };
    let written = (|| -> anyhow::Result<()> {
        for (file, text) in &files {
            let target = staging.join(file);
            if let Some(dir) = target.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            fs::write(&target, text)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        if staging != path {
            fs::rename(&staging, path).with_context(|| {
                format!("cannot move {} to {}", staging.display(), path.display())
            })?;
        }
        Ok(())
    })();
    if let Err(err) = written {
        if staging != path {
            let _ = fs::remove_dir_all(&staging);
        } else {
            for (file, _) in &files {
                let _ = fs::remove_file(path.join(file));
            }
            let _ = fs::remove_dir(path.join("src"));
        }
        return Err(err);
    }
    Ok(json!({
        "created": path.display().to_string(),
        "crate": name,
        "sdk": sdk.dependency(),
        "build": "cargo build --target wasm32-wasip2 --release",
        "component": format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
    }))
}

/// Refuses a name cargo would refuse as a package name, before anything is written.
fn check_crate_name(name: &str) -> Result<(), UsageError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    match valid {
        true => Ok(()),
        false => Err(UsageError(format!(
            "{name:?} is not a crate name: ASCII letters, digits, - and _, starting with a \
             letter (give --name)"
        ))),
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_crate_and_refuses_to_overwrite_anything() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Git {
            url: "https://example.invalid/ds".into(),
            rev: Some("v0.2.0".into()),
        };
        let path = dir.path().join("my-notes");
        let out = new_model(&path, None, &sdk).unwrap();
        assert_eq!(out["crate"], "my-notes");
        assert_eq!(
            out["component"],
            "target/wasm32-wasip2/release/my_notes.wasm"
        );
        let manifest = fs::read_to_string(path.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-notes\""), "{manifest}");
        assert!(
            manifest.contains(
                "ds-guest-sdk = { git = \"https://example.invalid/ds\", rev = \"v0.2.0\" }"
            ),
            "{manifest}"
        );
        assert!(
            manifest.contains("\n[workspace]\n"),
            "a workspace of its own"
        );
        let lib = fs::read_to_string(path.join("src/lib.rs")).unwrap();
        assert!(lib.contains("ds_guest_sdk::export_model!(Tasks);"));
        assert!(!lib.contains("{{"), "every placeholder filled");
        let readme = fs::read_to_string(path.join("README.md")).unwrap();
        assert!(readme.contains("target/wasm32-wasip2/release/my_notes.wasm"));

        // A second run, or a run into a directory with anything in it, writes nothing.
        fs::write(path.join("src/lib.rs"), "mine").unwrap();
        let err = new_model(&path, None, &sdk).unwrap_err();
        assert!(
            err.is::<UsageError>() && err.to_string().contains("not empty"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(path.join("src/lib.rs")).unwrap(), "mine");

        // An empty directory is filled; no staging directory is left behind.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        new_model(&empty, Some("tasks"), &SdkSource::Version("0.2.0".into())).unwrap();
        let manifest = fs::read_to_string(empty.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("ds-guest-sdk = \"0.2.0\""), "{manifest}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn bad_names_and_sdk_paths_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["1st", "my model", "", "über"] {
            let err = new_model(
                &dir.path().join("x"),
                Some(name),
                &SdkSource::Version("0.2.0".into()),
            )
            .unwrap_err();
            assert!(err.is::<UsageError>(), "{name:?}: {err}");
        }
        let err = new_model(
            &dir.path().join("x"),
            None,
            &SdkSource::Path(dir.path().join("no-sdk")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no Cargo.toml"), "{err}");
        assert!(!dir.path().join("x").exists(), "nothing written");
    }

    #[test]
    fn paths_are_written_as_toml_strings() {
        assert_eq!(toml_string(r#"C:\ds "x""#), r#""C:\\ds \"x\"""#);
        assert_eq!(
            SdkSource::Path(PathBuf::from("/src/ds/guest/sdk")).dependency(),
            r#"ds-guest-sdk = { path = "/src/ds/guest/sdk" }"#
        );
    }
}
