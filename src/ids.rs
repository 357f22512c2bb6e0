//! Identifier newtypes, parsed once at the boundary.
//!
//! Every id that enters flowkey (from a client, a CLI argument or a legacy free-text column)
//! goes through one of the `parse` functions here. A function that takes a [`FlowId`] or a
//! [`SessionId`] can therefore never receive garbage, and the canonical text form (lowercase,
//! hyphenated) is the only one that reaches the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a piece of text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} {input:?} is not a UUID{hint}")]
    NotUuid {
        kind: &'static str,
        input: String,
        hint: &'static str,
    },
    #[error("{kind} {input:?} is a UUID of version {version}, but a UUID v4 is required")]
    WrongVersion {
        kind: &'static str,
        input: String,
        version: usize,
    },
    #[error("{kind} {input:?} has an unknown prefix; expected a bare UUID, `disc_session_<uuid>` or `session-<uuid>`")]
    UnknownPrefix { kind: &'static str, input: String },
}

/// Longest input echoed back in an error message, so a hostile megabyte of text is not
/// copied into logs and responses.
const MAX_ECHO: usize = 80;

fn echo(input: &str) -> String {
    if input.len() <= MAX_ECHO {
        return input.to_owned();
    }
    let mut end = MAX_ECHO;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}

/// Parses a bare UUID in its hyphenated form only (36 characters). Braced, URN and simple
/// (32 hex digits) forms are rejected: clients never sent them, and accepting them would
/// make two different texts name the same session.
fn parse_hyphenated(kind: &'static str, input: &str) -> Result<Uuid, IdError> {
    if input.len() != 36 {
        return Err(IdError::NotUuid {
            kind,
            input: echo(input),
            hint: " (expected 36 characters like 8-4-4-4-12 hex digits)",
        });
    }
    Uuid::try_parse(input).map_err(|_| IdError::NotUuid {
        kind,
        input: echo(input),
        hint: " (expected hex digits in the form 8-4-4-4-12)",
    })
}

macro_rules! uuid_newtype {
    ($(#[$meta:meta])* $name:ident, $schema_doc:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        /// In the OpenAPI document: the canonical text form, a lowercase hyphenated UUID.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                uuid_schema($schema_doc)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// A string schema of format `uuid`.
pub fn uuid_schema(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(description))
        .into()
}

uuid_newtype!(
    /// The id of a discovery flow: a UUID v4, the primary reference of every flow-keyed row.
    FlowId,
    "The id of a discovery flow (a UUID)."
);
uuid_newtype!(
    /// A legacy upload session id (`data_import_sessions.id`).
    SessionId,
    "Deprecated: a legacy upload session id, answered as a lowercase hyphenated UUID."
);
uuid_newtype!(
    /// The id of a `data_imports` row.
    ImportId,
    "The id of a data import."
);
uuid_newtype!(
    /// A `client_accounts.id`.
    ClientAccountId,
    "A client account id; with the engagement id it names the tenant."
);
uuid_newtype!(
    /// An `engagements.id`.
    EngagementId,
    "An engagement id; with the client account id it names the tenant."
);

impl FlowId {
    /// Parses a flow id: a hyphenated UUID of version 4, surrounding whitespace trimmed.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let uuid = parse_plain("flow id", input)?;
        if uuid.get_version_num() != 4 {
            return Err(IdError::WrongVersion {
                kind: "flow id",
                input: echo(input.trim()),
                version: uuid.get_version_num(),
            });
        }
        Ok(Self(uuid))
    }

    /// A fresh random flow id.
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps a UUID read back from the database. Legacy databases hold flow ids that are not
    /// v4 (a session id reused as a flow id), so data already stored is taken as it is; only
    /// input from outside goes through [`FlowId::parse`].
    pub fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl SessionId {
    /// Parses a legacy session id in any form a client ever sent: a bare UUID,
    /// `disc_session_<uuid>` or `session-<uuid>`, in any letter case, with surrounding
    /// whitespace trimmed. The canonical form is the lowercase hyphenated UUID.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        const KIND: &str = "session id";
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        let body = strip_prefix_ignore_case(trimmed, "disc_session_")
            .or_else(|| strip_prefix_ignore_case(trimmed, "session-"))
            .unwrap_or(trimmed);
        if body.len() > 36 {
            // Something like `foo_<uuid>`: a prefix we do not know, worth naming as such.
            let tail = body.get(body.len() - 36..);
            if tail.is_some_and(|tail| Uuid::try_parse(tail).is_ok()) {
                return Err(IdError::UnknownPrefix {
                    kind: KIND,
                    input: echo(trimmed),
                });
            }
        }
        parse_hyphenated(KIND, body)
            .map(Self)
            .map_err(|err| match err {
                IdError::NotUuid { hint, .. } => IdError::NotUuid {
                    kind: KIND,
                    input: echo(trimmed),
                    hint,
                },
                other => other,
            })
    }

    /// Wraps a UUID read back from the database.
    pub fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl ImportId {
    /// Parses a data import id: a hyphenated UUID, surrounding whitespace trimmed.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        parse_plain("import id", input).map(Self)
    }

    /// A fresh random import id.
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps a UUID read back from the database.
    pub fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl ClientAccountId {
    /// Parses a client account id: a hyphenated UUID, surrounding whitespace trimmed.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        parse_plain("client account id", input).map(Self)
    }

    /// Wraps a UUID read back from the database.
    pub fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl EngagementId {
    /// Parses an engagement id: a hyphenated UUID, surrounding whitespace trimmed.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        parse_plain("engagement id", input).map(Self)
    }

    /// Wraps a UUID read back from the database.
    pub fn from_stored(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

fn parse_plain(kind: &'static str, input: &str) -> Result<Uuid, IdError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(IdError::Empty { kind });
    }
    parse_hyphenated(kind, trimmed)
}

fn strip_prefix_ignore_case<'a>(input: &'a str, prefix: &str) -> Option<&'a str> {
    let head = input.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &input[prefix.len()..])
}

/// A tenant: the pair (client account, engagement). Every session, flow and asset belongs to
/// exactly one, and nothing is ever linked across two.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TenantId {
    pub client_account_id: ClientAccountId,
    pub engagement_id: EngagementId,
}

impl TenantId {
    pub fn new(client_account_id: ClientAccountId, engagement_id: EngagementId) -> Self {
        Self {
            client_account_id,
            engagement_id,
        }
    }

    /// Parses the two halves of a tenant, each a hyphenated UUID.
    pub fn parse(client_account_id: &str, engagement_id: &str) -> Result<Self, IdError> {
        Ok(Self::new(
            ClientAccountId::parse(client_account_id)?,
            EngagementId::parse(engagement_id)?,
        ))
    }

    /// Parses the CLI form `CLIENT:ENGAGEMENT`.
    pub fn parse_pair(input: &str) -> Result<Self, IdError> {
        match input.trim().split_once(':') {
            Some((client, engagement)) => Self::parse(client, engagement),
            None => Err(IdError::NotUuid {
                kind: "tenant",
                input: echo(input),
                hint: " (expected CLIENT_ACCOUNT_ID:ENGAGEMENT_ID)",
            }),
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.client_account_id, self.engagement_id)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({self})")
    }
}

/// Any id a client may use to name a flow, as far as can be told from its text alone.
///
/// A bare UUID is ambiguous (it may be a flow id, a session id or an import id); only the
/// compatibility service, which looks in the database, can tell which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyId {
    /// A bare UUID: a flow id, a session id or an import id.
    Bare(Uuid),
    /// A prefixed legacy session id (`disc_session_<uuid>` or `session-<uuid>`).
    Session(SessionId),
}

impl AnyId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let trimmed = input.trim();
        let session = SessionId::parse(trimmed)?;
        if trimmed.len() == 36 {
            Ok(Self::Bare(session.as_uuid()))
        } else {
            Ok(Self::Session(session))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "3f2b8c1e-9d4a-4b7e-8c21-5a6f7e8d9c0b";

    #[test]
    fn session_id_accepts_every_client_form() {
        for input in [
            U.to_owned(),
            format!("disc_session_{U}"),
            format!("DISC_SESSION_{}", U.to_uppercase()),
            format!("session-{U}"),
            format!("Session-{U}"),
            format!("  session-{U}\n"),
        ] {
            assert_eq!(SessionId::parse(&input).expect(&input).to_string(), U);
        }
    }

    #[test]
    fn session_id_rejects_garbage_with_a_reason() {
        assert!(matches!(SessionId::parse(""), Err(IdError::Empty { .. })));
        assert!(matches!(
            SessionId::parse("   "),
            Err(IdError::Empty { .. })
        ));
        assert!(matches!(
            SessionId::parse("abc"),
            Err(IdError::NotUuid { .. })
        ));
        assert!(matches!(
            SessionId::parse(&format!("flow_{U}")),
            Err(IdError::UnknownPrefix { .. })
        ));
        assert!(matches!(
            SessionId::parse(&U.replace('-', "")),
            Err(IdError::NotUuid { .. })
        ));
        let message = SessionId::parse("nope").unwrap_err().to_string();
        assert!(message.contains("\"nope\""), "{message}");
    }

    #[test]
    fn flow_id_requires_v4() {
        assert!(FlowId::parse(U).is_ok());
        let v1 = "3f2b8c1e-9d4a-1b7e-8c21-5a6f7e8d9c0b";
        assert!(matches!(
            FlowId::parse(v1),
            Err(IdError::WrongVersion { version: 1, .. })
        ));
        assert!(FlowId::parse(&format!("session-{U}")).is_err());
    }

    #[test]
    fn long_input_is_not_echoed_whole() {
        let long = "x".repeat(10_000);
        let message = SessionId::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 300, "{}", message.len());
    }

    #[test]
    fn tenant_pair_parses() {
        let t = TenantId::parse_pair(&format!("{U}:{U}")).expect("valid");
        assert_eq!(t.to_string(), format!("{U}:{U}"));
        assert!(TenantId::parse_pair(U).is_err());
    }

    #[test]
    fn any_id_tells_prefixed_from_bare() {
        assert!(matches!(AnyId::parse(U), Ok(AnyId::Bare(_))));
        assert!(matches!(
            AnyId::parse(&format!("session-{U}")),
            Ok(AnyId::Session(_))
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn case_mix(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_valid_session_form_round_trips(
            bits in any::<u128>(),
            prefix in prop::sample::select(vec!["", "disc_session_", "session-"]),
            mask in any::<u64>(),
            lead in "[ \t\n]{0,3}",
            trail in "[ \t\n]{0,3}",
        ) {
            let uuid = Uuid::from_u128(bits);
            let text = format!("{lead}{}{trail}", case_mix(&format!("{prefix}{uuid}"), mask));
            let parsed = SessionId::parse(&text).expect("valid form");
            prop_assert_eq!(parsed.as_uuid(), uuid);
            prop_assert_eq!(parsed.to_string(), uuid.hyphenated().to_string());
            // The canonical form parses to itself.
            prop_assert_eq!(SessionId::parse(&parsed.to_string()).expect("canonical"), parsed);
        }

        #[test]
        fn no_input_panics(input in any::<String>()) {
            let _ = SessionId::parse(&input);
            let _ = FlowId::parse(&input);
            let _ = ImportId::parse(&input);
            let _ = AnyId::parse(&input);
            let _ = TenantId::parse_pair(&input);
        }

        #[test]
        fn near_miss_inputs_are_errors_not_panics(
            bits in any::<u128>(),
            cut in 0usize..36,
            junk in "[^0-9a-fA-F-]",
        ) {
            let mut text = Uuid::from_u128(bits).to_string();
            text.replace_range(cut..cut + 1, &junk);
            prop_assert!(SessionId::parse(&text).is_err());
        }

        #[test]
        fn flow_ids_of_v4_round_trip(bits in any::<u128>()) {
            let uuid = uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid();
            let parsed = FlowId::parse(&uuid.to_string().to_uppercase()).expect("v4");
            prop_assert_eq!(parsed.as_uuid(), uuid);
        }
    }
}
