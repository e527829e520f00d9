//! What one request may ask for: query depth and complexity, page size, body and upload
//! sizes, introspection. A request over a limit is refused while it is parsed and validated,
//! before the caller's token is even looked up, so a hostile query costs no database work.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Value, Variables};

/// The limits, all configurable (`procedo serve --help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Largest complexity (each field 1, lists multiplied by their page size).
    pub max_complexity: usize,
    /// Largest `first` of a connection.
    pub max_page_size: usize,
    /// `first` when not given.
    pub default_page_size: usize,
    /// Largest request body, uploads included.
    pub max_body_bytes: usize,
    /// Largest uploaded file.
    pub max_upload_bytes: usize,
    /// Most files in one request.
    pub max_files: usize,
    /// Whether `__schema` / `__type` are answered (switch off in production).
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 12,
            max_complexity: 2_000,
            max_page_size: 100,
            default_page_size: 20,
            max_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 20 * 1024 * 1024,
            max_files: 20,
            introspection: true,
        }
    }
}

impl Limits {
    /// The page size for a `first` argument, or an error naming the cap.
    pub fn page_size(&self, first: Option<i32>) -> Result<usize, super::error::ApiError> {
        match first {
            None => Ok(self.default_page_size),
            Some(n) if n < 0 => Err(super::error::ApiError::bad_field(
                "first",
                "first non può essere negativo",
            )),
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > self.max_page_size {
                    Err(page_too_large(self.max_page_size))
                } else {
                    Ok(n)
                }
            }
        }
    }
}

fn page_too_large(max: usize) -> super::error::ApiError {
    super::error::ApiError::bad_field(
        "first",
        format!("pagina troppo grande: al massimo {max} elementi"),
    )
}

/// Refuses, at parse time, any `first:` argument above the page-size cap, whether literal or
/// given through a variable.
pub struct PageSizeGuard {
    max: usize,
}

impl PageSizeGuard {
    /// The guard for a cap.
    pub fn new(max: usize) -> PageSizeGuard {
        PageSizeGuard { max }
    }
}

impl ExtensionFactory for PageSizeGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PageSizeExtension { max: self.max })
    }
}

struct PageSizeExtension {
    max: usize,
}

#[async_trait::async_trait]
impl Extension for PageSizeExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut sets: Vec<&Positioned<SelectionSet>> = document
            .operations
            .iter()
            .map(|(_, op)| &op.node.selection_set)
            .collect();
        sets.extend(document.fragments.values().map(|f| &f.node.selection_set));
        for set in sets {
            check_set(set, variables, self.max)?;
        }
        Ok(document)
    }
}

fn check_set(
    set: &Positioned<SelectionSet>,
    variables: &Variables,
    max: usize,
) -> ServerResult<()> {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                for (name, value) in &field.node.arguments {
                    if name.node.as_str() == "first" {
                        let value = value
                            .node
                            .clone()
                            .into_const_with(|var| variables.get(&var).cloned().ok_or(()))
                            .ok();
                        if let Some(Value::Number(n)) = value
                            && n.as_u64().is_none_or(|n| n > max as u64)
                            && n.as_i64().is_none_or(|n| n >= 0)
                        {
                            return Err(ServerError::new(
                                page_too_large(max).to_string(),
                                Some(field.pos),
                            ));
                        }
                    }
                }
                check_set(&field.node.selection_set, variables, max)?;
            }
            Selection::InlineFragment(fragment) => {
                check_set(&fragment.node.selection_set, variables, max)?
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}
