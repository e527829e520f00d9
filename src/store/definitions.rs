//! Definitions: every loaded version of every workflow file. A version, once stored, never
//! changes: loading the same id and version with a different content hash is refused, so an
//! instance pinned to (id, version) always reads what it started with.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter, QueryOrder};
use sea_orm::{ColumnTrait, ConnectionTrait};
use serde_json::Value;

use super::entities::definition;
use super::{Error, Result, Store, from_json, instant, to_json};

/// A definition to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDefinition {
    /// Procedure id.
    pub id: String,
    /// Its version (≥ 1).
    pub version: u32,
    /// Title.
    pub title: String,
    /// `definition::content_hash(source, assets)`: what makes two loads "the same".
    pub content_hash: String,
    /// The YAML as read.
    pub source: String,
    /// The resolved assets the definition read (closures…), kept so an instance can be
    /// replayed without the files.
    pub assets: Value,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
}

/// What `save_definition` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// A new (id, version).
    Inserted,
    /// Already stored with the same content hash; nothing written.
    Unchanged,
}

/// A stored definition.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionRow {
    /// Procedure id.
    pub id: String,
    /// Its version.
    pub version: u32,
    /// Title.
    pub title: String,
    /// Content hash.
    pub content_hash: String,
    /// The YAML.
    pub source: String,
    /// The resolved assets.
    pub assets: Value,
    /// When it was first loaded.
    pub loaded_at: DateTime<Utc>,
}

impl DefinitionRow {
    fn from_model(m: definition::Model) -> Result<DefinitionRow> {
        let version = u32::try_from(m.version).map_err(|_| {
            Error::Corrupt(format!("definitions.version {} di '{}'", m.version, m.id))
        })?;
        let assets = from_json(
            &m.assets,
            format_args!("definitions.assets di '{}' v{}", m.id, m.version),
        )?;
        Ok(DefinitionRow {
            id: m.id,
            version,
            title: m.title,
            content_hash: m.content_hash,
            source: m.source,
            assets,
            loaded_at: m.loaded_at,
        })
    }
}

/// Checks that (id, version) exists, inside any connection or transaction.
pub(super) async fn exists<C: ConnectionTrait>(conn: &C, id: &str, version: u32) -> Result<bool> {
    Ok(
        definition::Entity::find_by_id((id.to_string(), version_column(version)?))
            .one(conn)
            .await?
            .is_some(),
    )
}

/// Stores a definition version in any connection or transaction (see
/// [`Store::save_definition`]).
pub(super) async fn save_in<C: ConnectionTrait>(conn: &C, new: &NewDefinition) -> Result<Saved> {
    let model = definition::ActiveModel {
        id: Set(new.id.clone()),
        version: Set(version_column(new.version)?),
        title: Set(new.title.clone()),
        content_hash: Set(new.content_hash.clone()),
        source: Set(new.source.clone()),
        assets: Set(to_json(&new.assets)?),
        loaded_at: Set(instant(new.loaded_at)),
    };
    let inserted = definition::Entity::insert(model)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await?;
    if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        return Ok(Saved::Inserted);
    }
    let stored = definition::Entity::find_by_id((new.id.clone(), version_column(new.version)?))
        .one(conn)
        .await?
        .map(DefinitionRow::from_model)
        .transpose()?
        .ok_or_else(|| {
            Error::Database(format!(
                "definizione '{}' v{} non salvata",
                new.id, new.version
            ))
        })?;
    if stored.content_hash == new.content_hash {
        Ok(Saved::Unchanged)
    } else {
        Err(Error::DefinitionChanged {
            id: new.id.clone(),
            version: new.version,
        })
    }
}

fn version_column(version: u32) -> Result<i32> {
    i32::try_from(version).map_err(|_| Error::NotFound {
        what: "definizione",
        id: format!("versione {version}"),
    })
}

impl Store {
    /// Stores a definition version. The same (id, version) again with the same content hash is
    /// `Unchanged`; with a different one it is `DefinitionChanged`.
    #[tracing::instrument(skip_all, fields(id = %new.id, version = new.version))]
    pub async fn save_definition(&self, new: &NewDefinition) -> Result<Saved> {
        save_in(&self.db, new).await
    }

    /// One definition version.
    pub async fn definition(&self, id: &str, version: u32) -> Result<Option<DefinitionRow>> {
        let Ok(version) = i32::try_from(version) else {
            return Ok(None);
        };
        definition::Entity::find_by_id((id.to_string(), version))
            .one(&self.db)
            .await?
            .map(DefinitionRow::from_model)
            .transpose()
    }

    /// The highest stored version of a definition.
    pub async fn latest_definition(&self, id: &str) -> Result<Option<DefinitionRow>> {
        definition::Entity::find()
            .filter(definition::Column::Id.eq(id))
            .order_by_desc(definition::Column::Version)
            .one(&self.db)
            .await?
            .map(DefinitionRow::from_model)
            .transpose()
    }

    /// Every stored definition version, by id then version.
    pub async fn definitions(&self) -> Result<Vec<DefinitionRow>> {
        definition::Entity::find()
            .order_by_asc(definition::Column::Id)
            .order_by_asc(definition::Column::Version)
            .all(&self.db)
            .await?
            .into_iter()
            .map(DefinitionRow::from_model)
            .collect()
    }
}
