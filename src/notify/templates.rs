//! Message templates: one YAML file per kind with handlebars `subject`, `text` and `html`.
//!
//! Rendering is strict: a variable the context lacks is an error, so a convocation never goes
//! out with an empty date. `{{#if name}}` may still test an optional variable. Subject and
//! text are rendered without escaping; the HTML part escapes every `{{value}}`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, TemplateError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::references::{References, references};
use super::{Error, TemplateDiagnostic, dates};

/// The message kinds shipped in `workflows/templates/` (and built into the binary).
pub const SHIPPED_KINDS: [&str; 28] = [
    "convocazione",
    "convocazione_annullata",
    "promemoria_scadenza",
    "avviso_pubblicato",
    "esito_istruttoria",
    "soccorso_istruttorio",
    "verbale_disponibile",
    "riepilogo_giornaliero",
    "avviso_annullato",
    "decadenza",
    "esito_adesione",
    "esito_graduatoria",
    "integrazioni_ricevute",
    "preavviso_rigetto",
    "proroga_termini",
    "riapertura_termini",
    "rigetto_istanza",
    "esito_valutazione",
    "rettifica_criteri",
    "verbale_commissione",
    "graduatoria",
    "avviso_pubblico",
    "deliberazione",
    "verbale_seduta",
    "termine_scaduto",
    "soccorso_senza_risposta",
    "consegna_fallita",
    "mancata_consegna_pec",
];

const SHIPPED_SOURCES: [(&str, &str); 28] = [
    (
        "convocazione",
        include_str!("../../workflows/templates/convocazione.yaml"),
    ),
    (
        "convocazione_annullata",
        include_str!("../../workflows/templates/convocazione_annullata.yaml"),
    ),
    (
        "promemoria_scadenza",
        include_str!("../../workflows/templates/promemoria_scadenza.yaml"),
    ),
    (
        "avviso_pubblicato",
        include_str!("../../workflows/templates/avviso_pubblicato.yaml"),
    ),
    (
        "esito_istruttoria",
        include_str!("../../workflows/templates/esito_istruttoria.yaml"),
    ),
    (
        "soccorso_istruttorio",
        include_str!("../../workflows/templates/soccorso_istruttorio.yaml"),
    ),
    (
        "verbale_disponibile",
        include_str!("../../workflows/templates/verbale_disponibile.yaml"),
    ),
    (
        "riepilogo_giornaliero",
        include_str!("../../workflows/templates/riepilogo_giornaliero.yaml"),
    ),
    (
        "avviso_annullato",
        include_str!("../../workflows/templates/avviso_annullato.yaml"),
    ),
    (
        "decadenza",
        include_str!("../../workflows/templates/decadenza.yaml"),
    ),
    (
        "esito_adesione",
        include_str!("../../workflows/templates/esito_adesione.yaml"),
    ),
    (
        "esito_graduatoria",
        include_str!("../../workflows/templates/esito_graduatoria.yaml"),
    ),
    (
        "integrazioni_ricevute",
        include_str!("../../workflows/templates/integrazioni_ricevute.yaml"),
    ),
    (
        "preavviso_rigetto",
        include_str!("../../workflows/templates/preavviso_rigetto.yaml"),
    ),
    (
        "proroga_termini",
        include_str!("../../workflows/templates/proroga_termini.yaml"),
    ),
    (
        "riapertura_termini",
        include_str!("../../workflows/templates/riapertura_termini.yaml"),
    ),
    (
        "rigetto_istanza",
        include_str!("../../workflows/templates/rigetto_istanza.yaml"),
    ),
    (
        "esito_valutazione",
        include_str!("../../workflows/templates/esito_valutazione.yaml"),
    ),
    (
        "rettifica_criteri",
        include_str!("../../workflows/templates/rettifica_criteri.yaml"),
    ),
    (
        "verbale_commissione",
        include_str!("../../workflows/templates/verbale_commissione.yaml"),
    ),
    (
        "graduatoria",
        include_str!("../../workflows/templates/graduatoria.yaml"),
    ),
    (
        "avviso_pubblico",
        include_str!("../../workflows/templates/avviso_pubblico.yaml"),
    ),
    (
        "deliberazione",
        include_str!("../../workflows/templates/deliberazione.yaml"),
    ),
    (
        "verbale_seduta",
        include_str!("../../workflows/templates/verbale_seduta.yaml"),
    ),
    (
        "termine_scaduto",
        include_str!("../../workflows/templates/termine_scaduto.yaml"),
    ),
    (
        "soccorso_senza_risposta",
        include_str!("../../workflows/templates/soccorso_senza_risposta.yaml"),
    ),
    (
        "consegna_fallita",
        include_str!("../../workflows/templates/consegna_fallita.yaml"),
    ),
    (
        "mancata_consegna_pec",
        include_str!("../../workflows/templates/mancata_consegna_pec.yaml"),
    ),
];

/// The three rendered parts of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// One line, whitespace collapsed.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

/// The loaded templates of every kind, ready to render. Cheap to share behind an `Arc`.
pub struct Templates {
    /// Subject and text: no escaping.
    plain: Handlebars<'static>,
    /// HTML: values are HTML-escaped.
    html: Handlebars<'static>,
    /// Kind → description, for listings.
    descriptions: BTreeMap<String, String>,
    /// Kind → top-level names read by any of its three parts.
    names: BTreeMap<String, BTreeSet<String>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Templates")
            .field("kinds", &self.descriptions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The serde mirror of one template file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    description: String,
    subject: Spanned<String>,
    text: Spanned<String>,
    html: Spanned<String>,
}

/// Which part of a message a template is, with the name used in messages and registries.
#[derive(Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn key(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    fn italian(self) -> &'static str {
        match self {
            Part::Subject => "l'oggetto",
            Part::Text => "il testo",
            Part::Html => "la versione HTML",
        }
    }
}

fn registry_name(kind: &str, part: Part) -> String {
    format!("{kind}.{}", part.key())
}

impl Templates {
    /// The templates shipped with procedo, built into the binary.
    pub fn builtin() -> Result<Templates, Vec<TemplateDiagnostic>> {
        Templates::from_sources(SHIPPED_SOURCES)
    }

    /// Loads every `*.yaml` file of `dir`; the file stem is the kind. Reports every problem
    /// of every file, not only the first.
    pub fn load_dir(dir: &Path) -> Result<Templates, Vec<TemplateDiagnostic>> {
        let unreadable = |message: String| {
            vec![TemplateDiagnostic {
                file: dir.to_path_buf(),
                line: None,
                column: None,
                message,
            }]
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|error| unreadable(format!("cartella dei modelli illeggibile: {error}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(unreadable(
                "nessun modello (*.yaml) nella cartella".to_owned(),
            ));
        }
        let mut builder = Builder::new();
        for file in files {
            let kind = file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read_to_string(&file) {
                Ok(source) => builder.add(&kind, &source, &file),
                Err(error) => builder.diagnostics.push(TemplateDiagnostic {
                    file: file.clone(),
                    line: None,
                    column: None,
                    message: format!("file illeggibile: {error}"),
                }),
            }
        }
        builder.finish()
    }

    /// Builds templates from `(kind, yaml_text)` pairs; diagnostics name `<kind>.yaml`.
    pub fn from_sources<I, K, S>(sources: I) -> Result<Templates, Vec<TemplateDiagnostic>>
    where
        I: IntoIterator<Item = (K, S)>,
        K: AsRef<str>,
        S: AsRef<str>,
    {
        let mut builder = Builder::new();
        for (kind, source) in sources {
            let kind = kind.as_ref();
            builder.add(kind, source.as_ref(), Path::new(&format!("{kind}.yaml")));
        }
        builder.finish()
    }

    /// Renders the three parts of `kind` with `context`.
    pub fn render(&self, kind: &str, context: &Value) -> Result<Rendered, Error> {
        if !self.descriptions.contains_key(kind) {
            return Err(Error::UnknownKind {
                kind: kind.to_owned(),
            });
        }
        let render = |registry: &Handlebars<'static>, part: Part| {
            registry
                .render(&registry_name(kind, part), context)
                .map_err(|error| Error::Render {
                    kind: kind.to_owned(),
                    part: part.italian(),
                    reason: render_reason(&error),
                })
        };
        let subject = render(&self.plain, Part::Subject)?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(&self.plain, Part::Text)?,
            html: render(&self.html, Part::Html)?,
        })
    }

    /// The loaded kinds, in alphabetical order.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.descriptions.keys().map(String::as_str)
    }

    /// The `description` of a kind.
    pub fn description(&self, kind: &str) -> Option<&str> {
        self.descriptions.get(kind).map(String::as_str)
    }

    /// The top-level context names the three parts of `kind` read (empty for an unknown kind):
    /// what `procedo validate` checks against the procedure's variables and the names the
    /// engine always provides (`procedura`, `istanza`, `destinatario`, `ambito`, `scadenza`).
    pub fn referenced_names(&self, kind: &str) -> BTreeSet<String> {
        self.names.get(kind).cloned().unwrap_or_default()
    }
}

/// Collects kinds and diagnostics; `finish` fails if any diagnostic was recorded.
struct Builder {
    plain: Handlebars<'static>,
    html: Handlebars<'static>,
    helper_names: HashSet<String>,
    descriptions: BTreeMap<String, String>,
    names: BTreeMap<String, BTreeSet<String>>,
    diagnostics: Vec<TemplateDiagnostic>,
}

impl Builder {
    fn new() -> Builder {
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        for registry in [&mut plain, &mut html] {
            registry.set_strict_mode(true);
            register_helpers(registry);
        }
        let helper_names = BUILTIN_HELPERS
            .iter()
            .chain(OWN_HELPERS.iter())
            .map(|name| (*name).to_owned())
            .collect();
        Builder {
            plain,
            html,
            helper_names,
            descriptions: BTreeMap::new(),
            names: BTreeMap::new(),
            diagnostics: Vec::new(),
        }
    }

    fn add(&mut self, kind: &str, source: &str, file: &Path) {
        let diagnostic =
            |line: Option<usize>, column: Option<usize>, message: String| TemplateDiagnostic {
                file: file.to_path_buf(),
                line,
                column,
                message,
            };
        if kind.is_empty()
            || !kind
                .chars()
                .all(|character| character.is_ascii_lowercase() || character == '_')
        {
            self.diagnostics.push(diagnostic(
                None,
                None,
                format!("nome del tipo «{kind}» non valido: usare lettere minuscole e _"),
            ));
            return;
        }
        if self.descriptions.contains_key(kind) {
            self.diagnostics.push(diagnostic(
                None,
                None,
                format!("il tipo «{kind}» è definito due volte"),
            ));
            return;
        }
        let parsed: TemplateFile = match serde_saphyr::from_str(source) {
            Ok(parsed) => parsed,
            Err(error) => {
                let location = error.location();
                self.diagnostics.push(diagnostic(
                    location.map(|location| to_usize(location.line())),
                    location.map(|location| to_usize(location.column())),
                    format!("YAML non valido: {}", first_line(&error.to_string())),
                ));
                return;
            }
        };
        let mut names = BTreeSet::new();
        let mut clean = true;
        for part in Part::ALL {
            let spanned = match part {
                Part::Subject => &parsed.subject,
                Part::Text => &parsed.text,
                Part::Html => &parsed.html,
            };
            let registry = match part {
                Part::Html => &mut self.html,
                Part::Subject | Part::Text => &mut self.plain,
            };
            let name = registry_name(kind, part);
            if let Err(error) = registry.register_template_string(&name, &spanned.value) {
                let (line, column) = template_error_position(&error, source, &spanned.referenced);
                self.diagnostics.push(diagnostic(
                    line,
                    column,
                    format!("modello «{}» non valido: {}", part.key(), error.reason()),
                ));
                clean = false;
                continue;
            }
            let Some(template) = registry.get_template(&name) else {
                continue;
            };
            let References {
                names: part_names,
                helpers,
            } = references(template, &self.helper_names);
            names.extend(part_names);
            for helper in helpers.difference(&self.known_helpers()) {
                self.diagnostics.push(diagnostic(
                    Some(to_usize(spanned.referenced.line())),
                    None,
                    format!(
                        "modello «{}»: funzione «{helper}» sconosciuta (disponibili: {})",
                        part.key(),
                        self.known_helpers()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                clean = false;
            }
        }
        if clean {
            self.descriptions
                .insert(kind.to_owned(), parsed.description.trim().to_owned());
            self.names.insert(kind.to_owned(), names);
        }
    }

    fn known_helpers(&self) -> BTreeSet<String> {
        self.helper_names.iter().cloned().collect()
    }

    fn finish(self) -> Result<Templates, Vec<TemplateDiagnostic>> {
        if !self.diagnostics.is_empty() {
            return Err(self.diagnostics);
        }
        Ok(Templates {
            plain: self.plain,
            html: self.html,
            descriptions: self.descriptions,
            names: self.names,
        })
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Maps a handlebars position (inside the YAML value) to a position in the file.
///
/// serde-saphyr places a block scalar (`text: |`) at its first content character and a quoted
/// scalar at its opening quote. Lines of a block scalar map one to one; the lines of a folded
/// inline scalar do not, so only its first line is exact.
fn template_error_position(
    error: &TemplateError,
    source: &str,
    value_location: &Location,
) -> (Option<usize>, Option<usize>) {
    let value_line = to_usize(value_location.line());
    let value_column = to_usize(value_location.column());
    let Some((template_line, template_column)) = error.pos() else {
        return (Some(value_line), Some(value_column));
    };
    let mut lines = source.lines();
    let previous_line = value_line
        .checked_sub(2)
        .and_then(|index| lines.clone().nth(index))
        .unwrap_or_default();
    let is_block = ["|", "|-", "|+", ">", ">-", ">+"]
        .iter()
        .any(|indicator| previous_line.trim_end().ends_with(indicator));
    let is_quoted = lines
        .nth(value_line.saturating_sub(1))
        .and_then(|line| line.chars().nth(value_column.saturating_sub(1)))
        .is_some_and(|first| first == '"' || first == '\'');
    let line = value_line + template_line.saturating_sub(1);
    let column = if template_line <= 1 || is_block {
        value_column + usize::from(is_quoted) + template_column.saturating_sub(1)
    } else {
        template_column
    };
    (Some(line), Some(column))
}

/// An Italian reason for a render failure, with the template position.
fn render_reason(error: &RenderError) -> String {
    let reason = match error.reason() {
        RenderErrorReason::MissingVariable(Some(name)) => {
            format!("manca la variabile «{name}» nel contesto")
        }
        RenderErrorReason::MissingVariable(None) => "manca una variabile nel contesto".to_owned(),
        other => other.to_string(),
    };
    match (error.line_no, error.column_no) {
        (Some(line), Some(column)) => format!("{reason} (riga {line}, colonna {column})"),
        _ => reason,
    }
}

/// The helpers handlebars registers by itself (without the `string_helpers` feature).
const BUILTIN_HELPERS: [&str; 17] = [
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

/// The helpers procedo adds, see [`register_helpers`].
const OWN_HELPERS: [&str; 5] = ["data", "data_lunga", "data_ora", "numero", "maiuscolo"];

fn register_helpers(registry: &mut Handlebars<'static>) {
    registry.register_helper(
        "data",
        Box::new(DateHelper {
            name: "data",
            format: dates::data,
        }),
    );
    registry.register_helper(
        "data_lunga",
        Box::new(DateHelper {
            name: "data_lunga",
            format: dates::data_lunga,
        }),
    );
    registry.register_helper(
        "data_ora",
        Box::new(DateHelper {
            name: "data_ora",
            format: dates::data_ora,
        }),
    );
    registry.register_helper("numero", Box::new(OrdinalHelper));
    registry.register_helper("maiuscolo", Box::new(UpperHelper));
}

/// `{{maiuscolo organo}}`: the text in capitals, for the heading of an act ("VERBALE DELLA
/// SEDUTA – ASSEMBLEA DEI SINDACI"); a missing value prints nothing.
struct UpperHelper;

impl HelperDef for UpperHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let argument = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("maiuscolo", 0))?;
        match argument.value() {
            Value::Null => {}
            Value::String(text) => out.write(&text.to_uppercase())?,
            other => out.write(&other.to_string().to_uppercase())?,
        }
        Ok(())
    }
}

/// `{{data_lunga value}}`: formats one date argument with an Italian formatter.
struct DateHelper {
    name: &'static str,
    format: fn(&str) -> Result<String, Error>,
}

impl HelperDef for DateHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let argument = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(self.name, 0))?;
        let Some(text) = argument.value().as_str() else {
            return Err(RenderErrorReason::Other(format!(
                "{} richiede una data come testo (AAAA-MM-GG o RFC 3339), ricevuto {}",
                self.name,
                argument.value()
            ))
            .into());
        };
        let formatted =
            (self.format)(text).map_err(|error| RenderErrorReason::Other(error.to_string()))?;
        out.write(&formatted)?;
        Ok(())
    }
}

/// `{{numero @index}}`: the 1-based position of a list item, for numbered agendas.
struct OrdinalHelper;

impl HelperDef for OrdinalHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let index = helper
            .param(0)
            .and_then(|argument| argument.value().as_u64())
            .ok_or(RenderErrorReason::InvalidParamType(
                "numero: un indice intero",
            ))?;
        out.write(&(index.saturating_add(1)).to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::sample;
    use serde_json::json;

    fn builtin() -> Templates {
        match Templates::builtin() {
            Ok(templates) => templates,
            Err(diagnostics) => panic!(
                "shipped templates are broken:\n{}",
                diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Shipped kinds that are documents registered in the protocollo, not letters: they
    /// address no one.
    const DOCUMENT_KINDS: [&str; 5] = [
        "verbale_commissione",
        "graduatoria",
        "avviso_pubblico",
        "deliberazione",
        "verbale_seduta",
    ];

    #[test]
    fn every_shipped_kind_loads_and_renders_its_sample() {
        let templates = builtin();
        assert_eq!(
            templates.kinds().collect::<BTreeSet<_>>(),
            SHIPPED_KINDS.into_iter().collect::<BTreeSet<_>>()
        );
        for kind in SHIPPED_KINDS {
            let context = sample::context(kind).expect("a sample for every shipped kind");
            let rendered = templates
                .render(kind, &context)
                .unwrap_or_else(|error| panic!("{kind}: {error}"));
            assert!(!rendered.subject.is_empty(), "{kind}");
            assert!(!rendered.subject.contains('\n'), "{kind}");
            if !DOCUMENT_KINDS.contains(&kind) {
                assert!(rendered.text.contains("Gentile"), "{kind}");
            }
            assert!(rendered.html.contains("<html lang=\"it\">"), "{kind}");
            assert!(!templates.description(kind).unwrap_or("").is_empty());
        }
    }

    #[test]
    fn the_shipped_directory_matches_the_built_in_copy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/templates");
        let loaded = Templates::load_dir(&dir).expect("shipped directory loads");
        let builtin = builtin();
        assert_eq!(
            loaded.kinds().collect::<Vec<_>>(),
            builtin.kinds().collect::<Vec<_>>(),
            "every file in workflows/templates must be in SHIPPED_SOURCES"
        );
        for kind in SHIPPED_KINDS {
            assert_eq!(
                loaded.referenced_names(kind),
                builtin.referenced_names(kind)
            );
        }
    }

    #[test]
    fn a_convocation_reads_the_contract_names_and_its_own_variables() {
        let names = builtin().referenced_names("convocazione");
        let expected = [
            "ambito",
            "data_seduta",
            "destinatario",
            "istanza",
            "link",
            "luogo",
            "ordine_del_giorno",
            "organo",
            "procedura",
            "protocollo",
            "seconda_convocazione",
        ];
        assert_eq!(
            names.iter().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn the_rendered_convocation_is_italian_numbered_and_escaped_only_in_html() {
        let mut context = sample::context("convocazione").expect("sample");
        context["luogo"] = json!("Sala \"Aldo Moro\" <piano terra> & cortile");
        let rendered = builtin().render("convocazione", &context).expect("renders");
        assert!(
            rendered
                .subject
                .starts_with("Convocazione Assemblea dei Sindaci – ")
        );
        assert!(
            rendered
                .text
                .contains("Prima convocazione: lunedì 28 dicembre 2026, ore 12:00\n"),
            "{}",
            rendered.text
        );
        assert!(
            rendered
                .text
                .contains("Seconda convocazione: martedì 29 dicembre 2026, ore 12:00\n")
        );
        assert!(rendered.text.contains("  1. Approvazione del verbale"));
        assert!(rendered.text.contains("  3. Varie ed eventuali"));
        assert!(
            rendered
                .text
                .contains("Sala \"Aldo Moro\" <piano terra> & cortile")
        );
        assert!(
            rendered
                .html
                .contains("Sala &quot;Aldo Moro&quot; &lt;piano terra&gt; &amp;")
        );
        assert!(!rendered.text.contains("\n\n\n"), "{}", rendered.text);
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let mut context = sample::context("convocazione").expect("sample");
        if let Some(object) = context.as_object_mut() {
            object.remove("luogo");
        }
        let error = builtin()
            .render("convocazione", &context)
            .expect_err("strict mode");
        assert!(error.to_string().contains("«luogo»"), "{error}");
    }

    #[test]
    fn an_optional_variable_may_be_absent_behind_if() {
        let mut context = sample::context("convocazione").expect("sample");
        if let Some(object) = context.as_object_mut() {
            object.remove("link");
            object.remove("seconda_convocazione");
        }
        let rendered = builtin().render("convocazione", &context).expect("renders");
        assert!(!rendered.text.contains("Collegamento"));
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        let error = builtin()
            .render("telegramma", &json!({}))
            .expect_err("unknown");
        assert!(matches!(error, Error::UnknownKind { .. }));
    }

    #[test]
    fn a_syntax_error_is_reported_at_its_line_in_the_file() {
        let source = "description: prova\nsubject: \"Oggetto {{a}}\"\ntext: |\n  riga uno\n  riga {{#if b}}x{{/each}} due\nhtml: \"<p>{{a}}</p>\"\n";
        let diagnostics =
            Templates::from_sources([("prova", source)]).expect_err("mismatched block");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.file, PathBuf::from("prova.yaml"));
        assert_eq!(diagnostic.line, Some(5), "{diagnostic}");
        assert_eq!(diagnostic.column, Some(18), "{diagnostic}");
        assert!(diagnostic.message.contains("text"), "{diagnostic}");
    }

    #[test]
    fn a_syntax_error_in_a_quoted_subject_points_inside_the_quotes() {
        let source = "description: prova\nsubject: \"Oggetto {{a b=}}\"\ntext: t\nhtml: h\n";
        let diagnostics = Templates::from_sources([("prova", source)]).expect_err("bad hash");
        assert_eq!(diagnostics[0].line, Some(2), "{}", diagnostics[0]);
        assert_eq!(diagnostics[0].column, Some(25), "{}", diagnostics[0]);
    }

    #[test]
    fn every_problem_of_every_file_is_reported() {
        let missing_key = "description: x\nsubject: s\ntext: t\n";
        let unknown_helper = "description: x\nsubject: \"{{capitalizza a}}\"\ntext: t\nhtml: h\n";
        let bad_yaml = "description: [\n";
        let diagnostics = Templates::from_sources([
            ("uno", missing_key),
            ("due", unknown_helper),
            ("tre", bad_yaml),
            ("Quattro", missing_key),
        ])
        .expect_err("four broken files");
        assert_eq!(diagnostics.len(), 4, "{diagnostics:#?}");
        assert!(
            diagnostics[0].message.contains("html"),
            "{}",
            diagnostics[0]
        );
        assert!(
            diagnostics[1].message.contains("capitalizza"),
            "{}",
            diagnostics[1]
        );
        assert_eq!(diagnostics[1].line, Some(2));
        assert!(diagnostics[2].line.is_some(), "{}", diagnostics[2]);
        assert!(
            diagnostics[3].message.contains("Quattro"),
            "{}",
            diagnostics[3]
        );
    }

    #[test]
    fn a_date_helper_given_a_number_says_what_it_expects() {
        let source = "description: x\nsubject: \"{{data quando}}\"\ntext: t\nhtml: h\n";
        let templates = Templates::from_sources([("prova", source)]).expect("loads");
        let error = templates
            .render("prova", &json!({"quando": 20261228}))
            .expect_err("not a string");
        assert!(error.to_string().contains("AAAA-MM-GG"), "{error}");
    }
}
