//! Who calls the API and what ETS send through it: `organisations` (the Ambito, its comuni,
//! ETS), `people` (with their roles), `tokens` (only the SHA-256 of each API token is kept),
//! `documents` (content stored once by hash), `submissions` and their `submission_documents`,
//! `questions` (quesiti and answers) and `soccorso_responses` (soccorso istruttorio answers).
//!
//! At most one active submission per organisation and instance: a partial unique index
//! (`WHERE status = 'submitted'`) holds it on both backends, so a withdrawn one may be followed
//! by a new one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20250601_000001_definitions_instances::Instances;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
    Name,
    Kind,
    CodiceFiscale,
    Runts,
    CreatedAt,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    Name,
    Email,
    OrganisationId,
    Roles,
    Digest,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    PersonId,
    Role,
    Hash,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Documents {
    Table,
    Sha256,
    MediaType,
    Size,
    Content,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Submissions {
    Table,
    Id,
    InstanceId,
    OrganisationId,
    PersonId,
    Status,
    Note,
    SubmittedAt,
    WithdrawnAt,
    Outcome,
    Score,
    OutcomeAt,
}

#[derive(DeriveIden)]
enum SubmissionDocuments {
    Table,
    Id,
    SubmissionId,
    Sha256,
    Name,
    SoccorsoId,
    AddedAt,
}

#[derive(DeriveIden)]
enum Questions {
    Table,
    Id,
    InstanceId,
    OrganisationId,
    PersonId,
    Text,
    Answer,
    Public,
    AskedAt,
    AnsweredAt,
    AnsweredBy,
}

#[derive(DeriveIden)]
enum SoccorsoResponses {
    Table,
    Id,
    SubmissionId,
    PersonId,
    Note,
    RespondedAt,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organisations::Table)
                    .col(text(Organisations::Id).primary_key())
                    .col(text(Organisations::Name))
                    .col(text(Organisations::Kind))
                    .col(text_null(Organisations::CodiceFiscale))
                    .col(text_null(Organisations::Runts))
                    .col(timestamp_with_time_zone(Organisations::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(People::Table)
                    .col(text(People::Id).primary_key())
                    .col(text(People::Name))
                    .col(text(People::Email))
                    .col(text(People::OrganisationId))
                    .col(text(People::Roles))
                    .col(text(People::Digest))
                    .col(timestamp_with_time_zone(People::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_people_organisation",
                        (People::Table, People::OrganisationId),
                        (Organisations::Table, Organisations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .col(text(Tokens::Id).primary_key())
                    .col(text(Tokens::PersonId))
                    .col(text(Tokens::Role))
                    .col(text(Tokens::Hash).unique_key())
                    .col(timestamp_with_time_zone(Tokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Tokens::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_tokens_person",
                        (Tokens::Table, Tokens::PersonId),
                        (People::Table, People::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Documents::Table)
                    .col(text(Documents::Sha256).primary_key())
                    .col(text(Documents::MediaType))
                    .col(big_integer(Documents::Size))
                    .col(blob(Documents::Content))
                    .col(timestamp_with_time_zone(Documents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Submissions::Table)
                    .col(text(Submissions::Id).primary_key())
                    .col(text(Submissions::InstanceId))
                    .col(text(Submissions::OrganisationId))
                    .col(text(Submissions::PersonId))
                    .col(text(Submissions::Status))
                    .col(text_null(Submissions::Note))
                    .col(timestamp_with_time_zone(Submissions::SubmittedAt))
                    .col(timestamp_with_time_zone_null(Submissions::WithdrawnAt))
                    .col(text_null(Submissions::Outcome))
                    .col(double_null(Submissions::Score))
                    .col(timestamp_with_time_zone_null(Submissions::OutcomeAt))
                    .foreign_key(&mut fk(
                        "fk_submissions_instance",
                        (Submissions::Table, Submissions::InstanceId),
                        (Instances::Table, Instances::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_submissions_organisation",
                        (Submissions::Table, Submissions::OrganisationId),
                        (Organisations::Table, Organisations::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_submissions_person",
                        (Submissions::Table, Submissions::PersonId),
                        (People::Table, People::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_submissions_instance_organisation")
                    .table(Submissions::Table)
                    .col(Submissions::InstanceId)
                    .col(Submissions::OrganisationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_submissions_organisation")
                    .table(Submissions::Table)
                    .col(Submissions::OrganisationId)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_submissions_active ON submissions (instance_id, organisation_id) \
                 WHERE status = 'submitted'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SoccorsoResponses::Table)
                    .col(text(SoccorsoResponses::Id).primary_key())
                    .col(text(SoccorsoResponses::SubmissionId))
                    .col(text(SoccorsoResponses::PersonId))
                    .col(text_null(SoccorsoResponses::Note))
                    .col(timestamp_with_time_zone(SoccorsoResponses::RespondedAt))
                    .foreign_key(&mut fk(
                        "fk_soccorso_submission",
                        (SoccorsoResponses::Table, SoccorsoResponses::SubmissionId),
                        (Submissions::Table, Submissions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_soccorso_submission")
                    .table(SoccorsoResponses::Table)
                    .col(SoccorsoResponses::SubmissionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SubmissionDocuments::Table)
                    .col(big_pk_auto(SubmissionDocuments::Id))
                    .col(text(SubmissionDocuments::SubmissionId))
                    .col(text(SubmissionDocuments::Sha256))
                    .col(text(SubmissionDocuments::Name))
                    .col(text_null(SubmissionDocuments::SoccorsoId))
                    .col(timestamp_with_time_zone(SubmissionDocuments::AddedAt))
                    .foreign_key(&mut fk(
                        "fk_subdocs_submission",
                        (
                            SubmissionDocuments::Table,
                            SubmissionDocuments::SubmissionId,
                        ),
                        (Submissions::Table, Submissions::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_subdocs_document",
                        (SubmissionDocuments::Table, SubmissionDocuments::Sha256),
                        (Documents::Table, Documents::Sha256),
                    ))
                    .foreign_key(&mut fk(
                        "fk_subdocs_soccorso",
                        (SubmissionDocuments::Table, SubmissionDocuments::SoccorsoId),
                        (SoccorsoResponses::Table, SoccorsoResponses::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_subdocs_submission")
                    .table(SubmissionDocuments::Table)
                    .col(SubmissionDocuments::SubmissionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Questions::Table)
                    .col(text(Questions::Id).primary_key())
                    .col(text(Questions::InstanceId))
                    .col(text(Questions::OrganisationId))
                    .col(text(Questions::PersonId))
                    .col(text(Questions::Text))
                    .col(text_null(Questions::Answer))
                    .col(boolean(Questions::Public))
                    .col(timestamp_with_time_zone(Questions::AskedAt))
                    .col(timestamp_with_time_zone_null(Questions::AnsweredAt))
                    .col(text_null(Questions::AnsweredBy))
                    .foreign_key(&mut fk(
                        "fk_questions_instance",
                        (Questions::Table, Questions::InstanceId),
                        (Instances::Table, Instances::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_questions_organisation",
                        (Questions::Table, Questions::OrganisationId),
                        (Organisations::Table, Organisations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_questions_instance")
                    .table(Questions::Table)
                    .col(Questions::InstanceId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Questions::Table.into_iden(),
            SubmissionDocuments::Table.into_iden(),
            SoccorsoResponses::Table.into_iden(),
            Submissions::Table.into_iden(),
            Documents::Table.into_iden(),
            Tokens::Table.into_iden(),
            People::Table.into_iden(),
            Organisations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
