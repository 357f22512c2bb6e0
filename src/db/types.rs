//! How flowkey's value types are stored on each engine.
//!
//! The legacy schema stores UUIDs as `uuid` on PostgreSQL and as lowercase hyphenated TEXT on
//! SQLite, timestamps as `timestamptz` and as ISO-8601 UTC TEXT (`%Y-%m-%dT%H:%M:%fZ`). The
//! impls here let one bind (`.bind(flow_id)`) and one decode (`row.try_get::<FlowId, _>`) work
//! on both engines, so store code does not branch on the engine for every value.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use crate::ids::{ClientAccountId, EngagementId, FlowId, ImportId, SessionId};

/// Text form of a UUID on SQLite: lowercase and hyphenated, as the legacy data has it.
pub fn uuid_text(uuid: Uuid) -> String {
    uuid.hyphenated().to_string()
}

macro_rules! uuid_column {
    ($name:ident) => {
        impl Type<Sqlite> for $name {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <String as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<SqliteArgumentValue<'q>>,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, Sqlite>>::encode(uuid_text(self.as_uuid()), buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $name {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
                Ok(Self::from_stored(Uuid::try_parse(text)?))
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <Uuid as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <Uuid as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <Uuid as Encode<Postgres>>::encode_by_ref(&self.as_uuid(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self::from_stored(<Uuid as Decode<'r, Postgres>>::decode(
                    value,
                )?))
            }
        }
    };
}

uuid_column!(FlowId);
uuid_column!(SessionId);
uuid_column!(ImportId);
uuid_column!(ClientAccountId);
uuid_column!(EngagementId);
uuid_column!(DbUuid);

/// Any UUID column (a row's own id, a user id): `uuid` on PostgreSQL, TEXT on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbUuid(pub Uuid);

impl DbUuid {
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }
    fn as_uuid(&self) -> Uuid {
        self.0
    }
    fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

/// A point in time: `timestamptz` on PostgreSQL, `%Y-%m-%dT%H:%M:%fZ` TEXT on SQLite (the
/// legacy schema's own default format, so rows written by flowkey sort and compare like
/// rows written by the platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbTime(pub DateTime<Utc>);

impl DbTime {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// The SQLite text form.
    pub fn to_sqlite_text(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses the text forms found in SQLite databases: RFC 3339 (`…Z` or with an offset)
    /// and SQLite's own `YYYY-MM-DD HH:MM:SS[.fff]`.
    pub fn parse_text(text: &str) -> Option<Self> {
        if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
            return Some(Self(parsed.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()
            .map(|naive| Self(naive.and_utc()))
    }
}

/// In the OpenAPI document: an RFC 3339 date-time in UTC with microseconds.
impl utoipa::PartialSchema for DbTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 date-time in UTC"))
            .into()
    }
}

impl utoipa::ToSchema for DbTime {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Timestamp")
    }
}

impl serde::Serialize for DbTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Self::parse_text(text).ok_or_else(|| format!("unreadable timestamp {text:?}").into())
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<DateTime<Utc> as Decode<'r, Postgres>>::decode(
            value,
        )?))
    }
}

/// A JSON document already written as text (an import row's `raw_data`): bound as `json` on
/// PostgreSQL and as TEXT on SQLite without being parsed or re-serialized, so a row costs
/// one string on its way to the database. The writer is responsible for the text being JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

/// PostgreSQL's oid for `json` (the type of the legacy `raw_data` columns).
const PG_JSON_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(114);

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for JsonText {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(PG_JSON_OID)
    }
}

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // `json` travels as its text in the binary protocol too.
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_time_text_matches_the_legacy_default_format() {
        let t = DbTime::parse_text("2024-03-01T10:20:30.456Z").expect("parses");
        assert_eq!(t.to_sqlite_text(), "2024-03-01T10:20:30.456Z");
        assert!(DbTime::parse_text("2024-03-01 10:20:30").is_some());
        assert!(DbTime::parse_text("yesterday").is_none());
    }
}
