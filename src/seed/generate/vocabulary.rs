//! The words generated rows are made of: the CMDB export's header, phase names, the
//! placeholder tenant, and the names companies, people, applications and places are drawn from.

use uuid::Uuid;

/// The tenant the platform used when it did not know the real one; flows created under it
/// hold data of a real tenant.
pub const PLACEHOLDER_TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111);

/// The CMDB export's header, in file order, with the platform attribute each maps to.
pub const CMDB_COLUMNS: [(&str, &str); 13] = [
    ("Asset Name", "name"),
    ("Asset Type", "asset_type"),
    ("Environment", "environment"),
    ("Owner", "business_owner"),
    ("Criticality", "criticality"),
    ("Operating System", "operating_system"),
    ("CPU Cores", "cpu_cores"),
    ("Memory (GB)", "memory_gb"),
    ("Storage (GB)", "storage_gb"),
    ("Location", "location"),
    ("Dependencies", "dependencies"),
    ("Hostname", "hostname"),
    ("IP Address", "ip_address"),
];

/// Phase names that legacy flows sometimes hold in `status`.
pub const PHASE_NAMES: [&str; 7] = [
    "data_import",
    "field_mapping",
    "attribute_mapping",
    "data_cleansing",
    "inventory",
    "dependencies",
    "tech_debt",
];

pub(super) const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Cyberdyne Systems",
    "Soylent Foods",
    "Tyrell",
    "Aperture Labs",
];
pub(super) const FIRST_NAMES: &[&str] = &[
    "Alice", "Bob", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Lars", "Mei", "Nora", "Omar", "Priya",
];
pub(super) const LAST_NAMES: &[&str] = &[
    "Anderson", "Bauer", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jansen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel",
];
pub(super) const APPLICATIONS: &[&str] = &[
    "Billing",
    "CRM",
    "Payroll",
    "Inventory",
    "Portal",
    "Reporting",
    "Ledger",
    "Logistics",
    "Search",
    "Auth",
];
pub(super) const ROLES: &[(&str, &str)] = &[
    ("web", "Server"),
    ("app", "Application"),
    ("db", "Database"),
    ("lb", "Network"),
    ("nas", "Storage"),
    ("vm", "Virtual Machine"),
    ("mq", "Middleware"),
];
pub(super) const OPERATING_SYSTEMS: &[&str] = &[
    "Ubuntu 22.04 LTS",
    "Red Hat Enterprise Linux 8.6",
    "Windows Server 2019",
    "Windows Server 2016",
    "CentOS 7.9",
    "SUSE Linux Enterprise 15",
    "AIX 7.2",
];
pub(super) const LOCATIONS: &[&str] = &[
    "DC Frankfurt",
    "DC Dallas",
    "DC Singapore",
    "Azure West Europe",
    "AWS us-east-1",
    "London Colo",
    "Paris HQ",
];
