use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::db::types::DbTime;
use crate::flags::FlagError;
use crate::ids::TenantId;

/// The one flag flowkey knows, as stored in `flowkey_flags.name`.
pub const FLAG_NAME: &str = "enable_flow_id_primary";
/// The environment variable that gives the default when the table says nothing.
pub const ENV_VAR: &str = "ENABLE_FLOW_ID_PRIMARY";

/// How legacy routes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowIdPrimary {
    /// Read through the `session_id` columns, as before the migration.
    #[default]
    Off,
    /// Read both ways, serve the session-keyed answer, count differences.
    Shadow,
    /// Resolve the session to its flow and read through `flow_id`.
    On,
}

impl FlowIdPrimary {
    pub fn as_str(&self) -> &'static str {
        match self {
            FlowIdPrimary::Off => "off",
            FlowIdPrimary::Shadow => "shadow",
            FlowIdPrimary::On => "on",
        }
    }
}

impl fmt::Display for FlowIdPrimary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlowIdPrimary {
    type Err = FlagError;

    /// Accepts `off`/`shadow`/`on` and the boolean spellings the platform's environment used.
    fn from_str(input: &str) -> Result<Self, FlagError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "no" => Ok(FlowIdPrimary::Off),
            "shadow" => Ok(FlowIdPrimary::Shadow),
            "on" | "true" | "1" | "yes" => Ok(FlowIdPrimary::On),
            _ => Err(FlagError::UnknownValue {
                input: input.chars().take(40).collect(),
            }),
        }
    }
}

/// Where a stored value applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagScope {
    Global,
    Tenant(TenantId),
}

impl FlagScope {
    /// Parses `global` or `CLIENT_ACCOUNT_ID:ENGAGEMENT_ID`.
    pub fn parse(input: &str) -> Result<Self, FlagError> {
        if input.trim().eq_ignore_ascii_case("global") {
            return Ok(FlagScope::Global);
        }
        TenantId::parse_pair(input)
            .map(FlagScope::Tenant)
            .map_err(|source| FlagError::BadScope {
                input: input.chars().take(80).collect(),
                source,
            })
    }
}

impl fmt::Display for FlagScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagScope::Global => f.write_str("global"),
            FlagScope::Tenant(tenant) => write!(f, "{tenant}"),
        }
    }
}

/// One row of `flowkey_flags`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredFlag {
    pub name: String,
    pub scope: String,
    pub value: String,
    pub updated_at: DbTime,
    pub updated_by: String,
}

/// The default from `ENABLE_FLOW_ID_PRIMARY` (`off` when unset).
pub fn default_from_env() -> Result<FlowIdPrimary, FlagError> {
    match std::env::var(ENV_VAR) {
        Ok(value) if !value.trim().is_empty() => value.parse(),
        _ => Ok(FlowIdPrimary::Off),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_scopes_parse() {
        assert_eq!(
            "SHADOW".parse::<FlowIdPrimary>().ok(),
            Some(FlowIdPrimary::Shadow)
        );
        assert_eq!(
            "true".parse::<FlowIdPrimary>().ok(),
            Some(FlowIdPrimary::On)
        );
        assert!("maybe".parse::<FlowIdPrimary>().is_err());
        assert_eq!(FlagScope::parse("global").ok(), Some(FlagScope::Global));
        let pair = format!("{}:{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(
            FlagScope::parse(&pair).map(|s| s.to_string()).ok(),
            Some(pair)
        );
        assert!(FlagScope::parse("nope").is_err());
    }
}
