//! `streamhost plugin new`: a plugin crate of its own (its own workspace, the SDK by
//! path or by git, tests, a manifest, expected outcomes and a CI-like script) that
//! builds outside this repository. The files are in `scaffold/`.

use std::path::{Path, PathBuf};

/// Which kind of rule the crate starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Validator,
    Enricher,
}

/// Where the new crate takes the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    Path(PathBuf),
    Git(String),
}

impl Sdk {
    /// `--sdk`: a git URL (`https://…`, `ssh://…`, `git@…`), else a path to the SDK's
    /// folder; without it, the SDK of the source tree this binary was built from, if
    /// that is still there.
    pub fn from_arg(arg: Option<&str>) -> Result<Self, NewError> {
        match arg {
            Some(url) if url.contains("://") || url.starts_with("git@") => {
                Ok(Sdk::Git(url.to_owned()))
            }
            Some(path) => Self::at(Path::new(path)),
            None => {
                let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
                Self::at(&built_from).map_err(|_| NewError::NoSdk(built_from))
            }
        }
    }

    fn at(path: &Path) -> Result<Self, NewError> {
        let manifest = path.join("Cargo.toml");
        match std::fs::read_to_string(&manifest) {
            Ok(text) if text.contains("name = \"streamhost-sdk\"") => {
                let path = path
                    .canonicalize()
                    .map_err(|e| NewError::Io(path.to_owned(), e))?;
                Ok(Sdk::Path(path))
            }
            _ => Err(NewError::NotSdk(path.to_owned())),
        }
    }

    /// The dependency's TOML value.
    fn dependency(&self) -> String {
        match self {
            Sdk::Path(p) => format!("{{ path = {:?} }}", p.display().to_string()),
            Sdk::Git(url) => format!("{{ git = {url:?} }}"),
        }
    }
}

impl std::fmt::Display for Sdk {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Sdk::Path(p) => write!(f, "{}", p.display()),
            Sdk::Git(url) => f.write_str(url),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "`{0}` is not a plugin name: use lowercase letters, digits and `-` or `_`, \
         starting with a letter (it becomes the crate name and `name@version`)"
    )]
    BadName(String),
    #[error("{0}: already exists; choose another name or --dir")]
    Exists(PathBuf),
    #[error(
        "no SDK at {0} (this binary was built from a source tree that is not here): \
         give --sdk PATH (the folder plugins/sdk of a streamhost checkout) or --sdk GIT-URL"
    )]
    NoSdk(PathBuf),
    #[error("{0}: not the streamhost SDK (no Cargo.toml naming `streamhost-sdk`)")]
    NotSdk(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The templates that depend on the kind: the rule, its manifest, its cases.
fn by_kind(kind: Kind) -> [&'static str; 3] {
    match kind {
        Kind::Validator => [
            include_str!("scaffold/validator/lib.rs"),
            include_str!("scaffold/validator/manifest.toml"),
            include_str!("scaffold/validator/cases.jsonl"),
        ],
        Kind::Enricher => [
            include_str!("scaffold/enricher/lib.rs"),
            include_str!("scaffold/enricher/manifest.toml"),
            include_str!("scaffold/enricher/cases.jsonl"),
        ],
    }
}

/// Write the crate `name` into `dir/name`; returns its folder.
pub fn create(name: &str, kind: Kind, dir: &Path, sdk: &Sdk) -> Result<PathBuf, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.to_owned()));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(NewError::Exists(root));
    }
    // The built component and its manifest are named after the crate (`-` → `_`).
    let crate_name = name.replace('-', "_");
    let [rule, manifest, cases] = by_kind(kind);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk.dependency())
            .replace(
                "{{kind}}",
                match kind {
                    Kind::Validator => "validator",
                    Kind::Enricher => "enricher",
                },
            )
    };
    // Path inside the crate, template, executable.
    let files = [
        (
            "Cargo.toml".to_owned(),
            include_str!("scaffold/Cargo.toml.in"),
            false,
        ),
        (
            "README.md".to_owned(),
            include_str!("scaffold/README.md"),
            false,
        ),
        (
            "check.sh".to_owned(),
            include_str!("scaffold/check.sh"),
            true,
        ),
        (
            ".gitignore".to_owned(),
            include_str!("scaffold/gitignore"),
            false,
        ),
        ("src/lib.rs".to_owned(), rule, false),
        (format!("{crate_name}.toml"), manifest, false),
        ("cases.jsonl".to_owned(), cases, false),
    ];
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e| NewError::Io(path, e)
    };
    for (path, template, executable) in files {
        let target = root.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&target, fill(template)).map_err(io(&target))?;
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .map_err(io(&target))?;
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_crate_of_its_own_with_the_names_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Sdk::from_arg(None).unwrap();
        let root = create("referrer-guard", Kind::Validator, dir.path(), &sdk).unwrap();
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"referrer-guard\"") && cargo.contains("[workspace]"));
        assert!(cargo.contains("streamhost-sdk = { path = \"/"), "{cargo}");
        let check = std::fs::read_to_string(root.join("check.sh")).unwrap();
        assert!(check.contains("release/referrer_guard.wasm"), "{check}");
        assert!(root.join("referrer_guard.toml").is_file());
        for path in ["src/lib.rs", "cases.jsonl", "README.md", ".gitignore"] {
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            assert!(!text.contains("{{"), "{path}: a placeholder left: {text}");
        }
        assert!(matches!(
            create("referrer-guard", Kind::Enricher, dir.path(), &sdk),
            Err(NewError::Exists(_))
        ));
        for bad in ["Guard", "9lives", "a b", "", "../x"] {
            assert!(matches!(
                create(bad, Kind::Validator, dir.path(), &sdk),
                Err(NewError::BadName(_))
            ));
        }
        assert_eq!(
            Sdk::from_arg(Some("https://example.com/streamhost.git")).unwrap(),
            Sdk::Git("https://example.com/streamhost.git".into())
        );
        assert!(matches!(
            Sdk::from_arg(Some("/nonexistent")),
            Err(NewError::NotSdk(_))
        ));
    }
}
