//! What one request may ask for: query depth and complexity (fields that reach the database
//! cost more), fields at the top of an operation, aliases, page size, body and upload sizes,
//! introspection, and how many requests a caller may make (`rate.rs`). A request over a limit
//! is refused while it is parsed and validated, before the caller's token is even looked up,
//! so a hostile query costs no database work.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Value, Variables};

pub use super::rate::Rate;

/// The complexity of a field that reads the database, besides what it selects: ten ordinary
/// fields. A thousand aliased lookups are refused as 10,000 against a budget of 2,000.
pub const DB_READ_COST: usize = 10;

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
    /// Most fields at the top of one operation, fragments included: each may be a lookup.
    pub max_root_fields: usize,
    /// Most aliased fields in one request.
    pub max_aliases: usize,
    /// Requests per bearer token (HTTP requests and WebSocket operations alike).
    pub rate: Rate,
    /// Requests without a token, per client address.
    pub anonymous_rate: Rate,
    /// Refused tokens per client address, before the next one is even looked up.
    pub refused_rate: Rate,
    /// How often an open WebSocket checks its token again; when the token is no longer
    /// valid (revoked, expired, person or role removed) the socket is closed with 4403.
    pub token_recheck: Duration,
    /// Take the client's address from the first `X-Forwarded-For` entry (only behind a
    /// reverse proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 15,
            max_complexity: 2_000,
            max_page_size: 100,
            default_page_size: 20,
            max_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 20 * 1024 * 1024,
            max_files: 20,
            introspection: true,
            max_root_fields: 20,
            max_aliases: 30,
            rate: Rate {
                per_minute: 300,
                burst: 60,
            },
            anonymous_rate: Rate {
                per_minute: 60,
                burst: 30,
            },
            refused_rate: Rate {
                per_minute: 10,
                burst: 10,
            },
            token_recheck: Duration::from_secs(2),
            trust_forwarded_for: false,
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

/// Refuses at parse time, before validation and before any database work: a `first:`
/// argument above the page-size cap (literal or through a variable), an operation with more
/// top-level fields than allowed, a request with more aliases than allowed.
///
/// It also keeps the documents it parsed (clients send the same few operations again and
/// again, with other variables): a document seen before is not parsed again. The checks run
/// on every request all the same, since `first:` may come from the variables.
pub struct DocumentGuard {
    max_page_size: usize,
    max_root_fields: usize,
    max_aliases: usize,
    parsed: Arc<ParsedDocuments>,
}

impl DocumentGuard {
    /// The guard for these limits.
    pub fn new(limits: &Limits) -> DocumentGuard {
        DocumentGuard {
            max_page_size: limits.max_page_size,
            max_root_fields: limits.max_root_fields,
            max_aliases: limits.max_aliases,
            parsed: Arc::new(ParsedDocuments::default()),
        }
    }
}

impl ExtensionFactory for DocumentGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentExtension {
            max_page_size: self.max_page_size,
            max_root_fields: self.max_root_fields,
            max_aliases: self.max_aliases,
            parsed: Arc::clone(&self.parsed),
        })
    }
}

/// Documents kept: at most this many...
const PARSED_DOCUMENTS: usize = 256;
/// ...of at most this many bytes of text each.
const PARSED_DOCUMENT_BYTES: usize = 16 * 1024;

/// Parsed documents by their text. When full it starts again empty: a client that sends a
/// new text at every request costs a parse each time, as without it, and no more memory.
#[derive(Default)]
struct ParsedDocuments(std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>);

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(query).cloned()
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > PARSED_DOCUMENT_BYTES {
            return;
        }
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= PARSED_DOCUMENTS {
            map.clear();
        }
        map.insert(query.to_string(), document.clone());
    }
}

struct DocumentExtension {
    max_page_size: usize,
    max_root_fields: usize,
    max_aliases: usize,
    parsed: Arc<ParsedDocuments>,
}

#[async_trait::async_trait]
impl Extension for DocumentExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = match self.parsed.get(query) {
            Some(document) => document,
            None => {
                let document = next.run(ctx, query, variables).await?;
                self.parsed.keep(query, &document);
                document
            }
        };
        let mut sets: Vec<&Positioned<SelectionSet>> = document
            .operations
            .iter()
            .map(|(_, op)| &op.node.selection_set)
            .collect();
        sets.extend(document.fragments.values().map(|f| &f.node.selection_set));
        let mut aliases = 0usize;
        for set in &sets {
            check_set(set, variables, self.max_page_size, &mut aliases)?;
        }
        if aliases > self.max_aliases {
            return Err(ServerError::new(
                format!(
                    "troppi alias nella richiesta: {aliases}, al massimo {}",
                    self.max_aliases
                ),
                None,
            ));
        }
        for (_, operation) in document.operations.iter() {
            let mut visited = HashSet::new();
            let roots = root_fields(&document, &operation.node.selection_set, &mut visited);
            if roots > self.max_root_fields {
                return Err(ServerError::new(
                    format!(
                        "troppi campi alla radice dell'operazione: {roots}, al massimo {} \
                         (ogni campo può essere una lettura del database)",
                        self.max_root_fields
                    ),
                    Some(operation.pos),
                ));
            }
        }
        Ok(document)
    }
}

/// The fields at the top of a selection set, fragment spreads and inline fragments expanded
/// (a fragment spread twice counts twice; a cycle, which validation refuses later, once).
fn root_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a Positioned<SelectionSet>,
    visited: &mut HashSet<&'a str>,
) -> usize {
    let mut count = 0usize;
    for item in &set.node.items {
        count = count.saturating_add(match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => {
                root_fields(document, &fragment.node.selection_set, visited)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) if visited.insert(name) => {
                        let n = root_fields(document, &fragment.node.selection_set, visited);
                        visited.remove(name);
                        n
                    }
                    _ => 0,
                }
            }
        });
    }
    count
}

fn check_set(
    set: &Positioned<SelectionSet>,
    variables: &Variables,
    max: usize,
    aliases: &mut usize,
) -> ServerResult<()> {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                if field.node.alias.is_some() {
                    *aliases += 1;
                }
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
                check_set(&field.node.selection_set, variables, max, aliases)?;
            }
            Selection::InlineFragment(fragment) => {
                check_set(&fragment.node.selection_set, variables, max, aliases)?
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}
