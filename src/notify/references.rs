//! Which context names a handlebars template reads, found by walking its syntax tree.
//!
//! `procedo validate` compares these names with the variables a procedure defines plus the
//! names the engine always provides, so a typo in a template is caught before a convocation
//! goes out. Only *top-level* names count: inside `{{#each list}}` and `{{#with thing}}`
//! names are relative to the item; `this`, `@index` and block parameters are not names;
//! `../name` and `@root.name` climb back to the top.

use std::collections::{BTreeSet, HashSet};

use handlebars::Path;
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};

/// Names found in one template: what it reads at the top level and which helpers it calls.
#[derive(Debug, Default)]
pub(crate) struct References {
    /// First segment of every top-level path read, e.g. `procedura` for `procedura.titolo`.
    pub(crate) names: BTreeSet<String>,
    /// Every helper called, built in or not, e.g. `each`, `data_lunga`.
    pub(crate) helpers: BTreeSet<String>,
}

/// Built-in helpers that give their block a new context (the item, the object).
const CONTEXT_CHANGING_HELPERS: [&str; 2] = ["each", "with"];

/// Walks `template`; `helper_names` are the registered helpers, needed because `{{foo}}` is a
/// helper call when `foo` is a helper and a variable otherwise.
pub(crate) fn references(template: &Template, helper_names: &HashSet<String>) -> References {
    let mut found = References::default();
    let walker = Walker { helper_names };
    walker.template(template, 0, &mut found);
    found
}

struct Walker<'a> {
    helper_names: &'a HashSet<String>,
}

impl Walker<'_> {
    fn template(&self, template: &Template, depth: usize, found: &mut References) {
        for element in &template.elements {
            self.element(element, depth, found);
        }
    }

    fn element(&self, element: &TemplateElement, depth: usize, found: &mut References) {
        match element {
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                self.expression(helper, depth, found);
            }
            TemplateElement::HelperBlock(helper) => self.block(helper, depth, found),
            TemplateElement::DecoratorExpression(decorator)
            | TemplateElement::DecoratorBlock(decorator)
            | TemplateElement::PartialExpression(decorator)
            | TemplateElement::PartialBlock(decorator) => {
                for parameter in decorator.params.iter().chain(decorator.hash.values()) {
                    self.parameter(parameter, depth, found);
                }
                if let Some(inner) = &decorator.template {
                    self.template(inner, depth, found);
                }
            }
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            // The enum is non-exhaustive; a future element kind reads nothing we know of.
            _ => {}
        }
    }

    /// `{{name}}`, `{{helper arg key=value}}`.
    fn expression(&self, helper: &HelperTemplate, depth: usize, found: &mut References) {
        let is_plain_path = helper.params.is_empty() && helper.hash.is_empty();
        match &helper.name {
            Parameter::Path(path) if is_plain_path && !self.is_helper(path) => {
                record_path(path, depth, found);
            }
            Parameter::Path(path) => {
                found.helpers.insert(path_raw(path).to_owned());
            }
            Parameter::Name(name) => {
                found.helpers.insert(name.clone());
            }
            other => self.parameter(other, depth, found),
        }
        for parameter in helper.params.iter().chain(helper.hash.values()) {
            self.parameter(parameter, depth, found);
        }
    }

    /// `{{#if x}}…{{else}}…{{/if}}`, `{{#each list}}…{{/each}}`.
    fn block(&self, helper: &HelperTemplate, depth: usize, found: &mut References) {
        let name = match &helper.name {
            Parameter::Name(name) => name.clone(),
            Parameter::Path(path) => path_raw(path).to_owned(),
            other => {
                self.parameter(other, depth, found);
                String::new()
            }
        };
        for parameter in helper.params.iter().chain(helper.hash.values()) {
            self.parameter(parameter, depth, found);
        }
        let inner_depth = if CONTEXT_CHANGING_HELPERS.contains(&name.as_str()) {
            depth + 1
        } else {
            depth
        };
        if let Some(inner) = &helper.template {
            self.template(inner, inner_depth, found);
        }
        // `{{else}}` of `each`/`with` runs in the outer context.
        if let Some(inverse) = &helper.inverse {
            self.template(inverse, depth, found);
        }
        if !name.is_empty() {
            found.helpers.insert(name);
        }
    }

    fn parameter(&self, parameter: &Parameter, depth: usize, found: &mut References) {
        match parameter {
            Parameter::Path(path) => record_path(path, depth, found),
            Parameter::Subexpression(subexpression) => {
                self.element(subexpression.as_element(), depth, found);
            }
            Parameter::Name(_) | Parameter::Literal(_) => {}
            _ => {}
        }
    }

    fn is_helper(&self, path: &Path) -> bool {
        self.helper_names.contains(path_raw(path))
    }
}

fn path_raw(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

/// Records the first named segment of `path` when it resolves to the top-level context.
fn record_path(path: &Path, depth: usize, found: &mut References) {
    // `@index`, `@key`, `@first`…: block-local data, not context names.
    let Path::Relative((segments, raw)) = path else {
        return;
    };
    let Some(first_name) = segments.iter().find_map(|segment| match segment {
        handlebars::PathSeg::Named(name) => Some(name),
        _ => None,
    }) else {
        // `this`, `.`: the current context itself.
        return;
    };
    let raw = raw.trim_start_matches("this/").trim_start_matches("./");
    let resolves_to_top = if raw.starts_with("@root") {
        true
    } else {
        let levels_up = raw.matches("../").count();
        levels_up >= depth
    };
    if resolves_to_top {
        found.names.insert(first_name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(source: &str) -> Vec<String> {
        let template = Template::compile(source).expect("template compiles");
        let helpers: HashSet<String> = ["data_lunga", "oggi"].map(String::from).into();
        references(&template, &helpers).names.into_iter().collect()
    }

    #[test]
    fn top_level_names_and_first_segments_are_reported() {
        assert_eq!(
            names_in("{{organo}} {{procedura.titolo}} {{{destinatario.nome}}}"),
            ["destinatario", "organo", "procedura"]
        );
    }

    #[test]
    fn names_inside_each_are_relative_to_the_item() {
        assert_eq!(
            names_in("{{#each voci}}{{titolo}} {{this}} {{@index}} {{../ambito.nome}}{{/each}}"),
            ["ambito", "voci"]
        );
        assert_eq!(
            names_in("{{#each voci as |voce|}}{{voce.titolo}}{{@root.istanza.id}}{{/each}}"),
            ["istanza", "voci"]
        );
    }

    #[test]
    fn with_changes_context_but_if_does_not() {
        assert_eq!(
            names_in(
                "{{#with seduta}}{{luogo}}{{/with}}{{#if link}}{{link}}{{else}}{{altro}}{{/if}}"
            ),
            ["altro", "link", "seduta"]
        );
    }

    #[test]
    fn helper_arguments_and_subexpressions_are_read_but_helpers_are_not_names() {
        assert_eq!(
            names_in("{{data_lunga scadenza.data}} {{oggi}} {{#if (eq stato \"x\")}}y{{/if}}"),
            ["scadenza", "stato"]
        );
        let template = Template::compile("{{data_lunga a}}{{#each b}}{{/each}}{{ignoto c}}")
            .expect("compiles");
        let found = references(&template, &HashSet::new());
        assert_eq!(
            found.helpers.into_iter().collect::<Vec<_>>(),
            ["data_lunga", "each", "ignoto"]
        );
    }

    #[test]
    fn nested_each_needs_two_levels_up_to_reach_the_top() {
        assert_eq!(
            names_in("{{#each a}}{{#each b}}{{../x}}{{../../y}}{{/each}}{{/each}}"),
            ["a", "y"]
        );
    }
}
