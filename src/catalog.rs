//! Reads workflow files, their closures calendars and the message templates from disk, and
//! hands the text to the pure validator. The only place that knows the `workflows/` layout:
//! procedures are the `*.yaml` files at the top of the folder; `templates/` holds message
//! kinds; other sub-folders (e.g. `calendari/`) hold data the procedures reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::definition::{self, Diagnostic, Environment, Procedure};
use crate::notify::Templates;

/// A validated procedure with what it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The procedure.
    pub procedure: Procedure,
    /// The file it came from.
    pub path: PathBuf,
    /// Its source text, stored with the definition.
    pub source: String,
    /// What it read besides its own file (closures), stored with the definition.
    pub assets: serde_json::Value,
    /// Content hash of source and assets.
    pub hash: String,
}

/// The procedures and templates of a `workflows/` folder.
#[derive(Debug)]
pub struct Catalog {
    /// Procedures by id (the highest version of each file set wins in `latest`).
    pub procedures: Vec<Loaded>,
    /// Message templates.
    pub templates: Templates,
}

impl Catalog {
    /// The highest version of a procedure.
    pub fn latest(&self, id: &str) -> Option<&Loaded> {
        self.procedures
            .iter()
            .filter(|l| l.procedure.id == id)
            .max_by_key(|l| l.procedure.version)
    }

    /// A procedure at a version.
    pub fn get(&self, id: &str, version: u32) -> Option<&Loaded> {
        self.procedures
            .iter()
            .find(|l| l.procedure.id == id && l.procedure.version == version)
    }
}

/// Expands the paths given on the command line: a folder means its top-level `*.yaml` files.
pub fn workflow_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| io_diag(path, &e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("impossibile leggere: {e}"),
    }
}

/// The templates folder for a set of workflow paths: `<folder>/templates` of the first folder
/// (or of the first file's folder).
pub fn templates_dir(paths: &[PathBuf]) -> Option<PathBuf> {
    let first = paths.first()?;
    let base = if first.is_dir() {
        first.clone()
    } else {
        first.parent()?.to_path_buf()
    };
    let dir = base.join("templates");
    dir.is_dir().then_some(dir)
}

/// Loads and validates every file, returning all procedures that are valid and every problem.
pub fn load(paths: &[PathBuf]) -> (Option<Catalog>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let templates = match templates_dir(paths) {
        Some(dir) => match Templates::load_dir(&dir) {
            Ok(t) => Some(t),
            Err(errors) => {
                diags.extend(errors.into_iter().map(template_diag));
                None
            }
        },
        None => match Templates::builtin() {
            Ok(t) => Some(t),
            Err(errors) => {
                diags.extend(errors.into_iter().map(template_diag));
                None
            }
        },
    };
    let names: Option<BTreeMap<String, BTreeSet<String>>> = templates.as_ref().map(template_names);

    let files = match workflow_files(paths) {
        Ok(files) => files,
        Err(d) => return (None, vec![d]),
    };
    // First pass: read every file, so `start:` actions can name any procedure in the set.
    let mut sources = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push((file, text)),
            Err(e) => diags.push(io_diag(&file, &e)),
        }
    }
    let ids: BTreeSet<String> = sources
        .iter()
        .filter_map(|(_, text)| peek_id(text))
        .collect();

    let mut procedures = Vec::new();
    for (file, text) in sources {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = file.display().to_string();
        match load_source(&base, &name, &text, names.as_ref(), &ids) {
            Ok(mut loaded) => {
                loaded.path = file;
                procedures.push(loaded);
            }
            Err(errors) => diags.extend(errors),
        }
    }
    let mut seen = BTreeMap::new();
    for l in &procedures {
        if let Some(other) = seen.insert(
            (l.procedure.id.clone(), l.procedure.version),
            l.path.display().to_string(),
        ) {
            diags.push(Diagnostic {
                file: l.path.display().to_string(),
                line: 1,
                column: 1,
                message: format!(
                    "la procedura '{}' versione {} è già definita in {other}",
                    l.procedure.id, l.procedure.version
                ),
            });
        }
    }
    let catalog = templates.map(|templates| Catalog {
        procedures,
        templates,
    });
    (catalog, diags)
}

/// Validates one workflow text named `name` (a file, or what a client sent), reading the files
/// it refers to (closures, a body) under `base`: the procedure with its source, assets and
/// content hash, or every problem with line and column. `procedures` are the ids a `start:`
/// may name; `templates` the notification kinds and the names each reads.
pub fn load_source(
    base: &Path,
    name: &str,
    text: &str,
    templates: Option<&BTreeMap<String, BTreeSet<String>>>,
    procedures: &BTreeSet<String>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let role_names: Vec<&str> = crate::identity::Role::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    let read_assets = std::cell::RefCell::new(serde_json::Map::new());
    let read = |rel: &str| -> Result<String, String> {
        if Path::new(rel).is_absolute() || rel.split(['/', '\\']).any(|part| part == "..") {
            return Err(format!(
                "'{rel}': un file di una procedura è indicato con un percorso relativo alla cartella delle procedure, senza '..'"
            ));
        }
        let text = std::fs::read_to_string(base.join(rel)).map_err(|e| e.to_string())?;
        read_assets
            .borrow_mut()
            .insert(rel.to_string(), serde_json::Value::String(text.clone()));
        Ok(text)
    };
    let mut ids = procedures.clone();
    if let Some(id) = peek_id(text) {
        ids.insert(id);
    }
    let env = Environment {
        templates,
        read_closures: &read,
        procedures: Some(&ids),
        known_roles: Some(&role_names),
    };
    let procedure = definition::validate(name, text, &env)?;
    let assets = serde_json::Value::Object(read_assets.into_inner());
    let hash = definition::content_hash(text, &assets.to_string());
    Ok(Loaded {
        procedure,
        path: PathBuf::from(name),
        source: text.to_string(),
        assets,
        hash,
    })
}

/// The notification kinds of `templates` with the names each reads, as validation needs them.
pub fn template_names(templates: &Templates) -> BTreeMap<String, BTreeSet<String>> {
    templates
        .kinds()
        .map(|k| (k.to_string(), templates.referenced_names(k)))
        .collect()
}

/// Rebuilds a procedure from stored source and assets (a pinned version).
pub fn from_stored(
    file: &str,
    source: &str,
    assets: &serde_json::Value,
) -> Result<Procedure, Vec<Diagnostic>> {
    let read = |rel: &str| -> Result<String, String> {
        assets
            .get(rel)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("'{rel}' non è tra i dati salvati con la definizione"))
    };
    let env = Environment {
        templates: None,
        read_closures: &read,
        procedures: None,
        known_roles: None,
    };
    definition::validate(file, source, &env)
}

fn peek_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|rest| rest.trim().trim_matches('"').to_string())
}

fn template_diag(d: crate::notify::TemplateDiagnostic) -> Diagnostic {
    Diagnostic {
        file: d.file.display().to_string(),
        line: d.line.unwrap_or(0) as u64,
        column: d.column.unwrap_or(0) as u64,
        message: d.message,
    }
}
