"""Writes the schemathesis configuration for one fuzz run: real ids from the seeded database
(a tenant's pair of ids, its flows, imports, sessions and field mappings), offered to the
fuzzer as dictionaries next to what it generates, so requests reach real rows as well as
random ones.

Usage: fuzz_config.py ENGINE DATABASE_URL OUT.toml
"""

import base64
import hashlib
import hmac
import json
import time
import sqlite3
import subprocess
import sys


def rows(engine, url, sql):
    if engine == "sqlite":
        path = url.split("://", 1)[1]
        with sqlite3.connect(path) as conn:
            return [tuple(str(v) for v in row) for row in conn.execute(sql)]
    out = subprocess.run(
        ["psql", url, "-AtF", "\t", "-c", sql], check=True, capture_output=True, text=True
    ).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret, claims):
    """A JWT signed HS256, as the platform signs them (stdlib only: no PyJWT needed)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def main():
    engine, url, out, secret, admin_token = sys.argv[1:6]
    # The tenant with the most flows: its ids are the fuzzer's usual tenant headers.
    client, engagement = rows(
        engine,
        url,
        "SELECT client_account_id, engagement_id FROM discovery_flows "
        "GROUP BY client_account_id, engagement_id ORDER BY COUNT(*) DESC LIMIT 1",
    )[0]
    tenant = f"client_account_id = '{client}' AND engagement_id = '{engagement}'"
    flows = [r[0] for r in rows(engine, url, f"SELECT flow_id FROM discovery_flows WHERE {tenant} LIMIT 20")]
    imports = [r[0] for r in rows(engine, url, f"SELECT id FROM data_imports WHERE {tenant} LIMIT 20")]
    sessions = [r[0] for r in rows(engine, url, f"SELECT session_id FROM session_flow_mapping WHERE {tenant} LIMIT 20")]
    mappings = [
        r[0]
        for r in rows(
            engine,
            url,
            "SELECT m.id FROM import_field_mappings m JOIN data_imports di ON di.id = m.data_import_id "
            f"WHERE di.client_account_id = '{client}' AND di.engagement_id = '{engagement}' LIMIT 20",
        )
    ]
    sessions += [f"disc_session_{s}" for s in sessions[:5]] + [f"session-{s.upper()}" for s in sessions[5:10]]

    # The fuzzer calls as a user of the seeded data, granted its usual tenant by the token's
    # claims (the server runs with --grants claims: a seeded database has no RBAC tables).
    user = rows(engine, url, "SELECT id FROM users ORDER BY id LIMIT 1")[0][0]
    token = hs256_token(
        secret,
        {
            "sub": user,
            "exp": int(time.time()) + 24 * 3600,
            "client_account_id": client,
            "engagement_ids": [engagement],
        },
    )

    def values(items):
        return json.dumps(items or ["00000000-0000-4000-8000-000000000000"])

    with open(out, "w") as f:
        f.write(
            f"""# The tenant routes take the user's JWT; the admin routes their own token.
headers = {{ Authorization = "Bearer {token}" }}

# Every check: no 5xx, documented statuses, headers and content types, responses in their
# schema, schema-valid requests accepted, schema-invalid ones refused, and the rest.
[checks]
enabled = true

[dictionaries.client]
values = {values([client])}
[dictionaries.engagement]
values = {values([engagement])}
[dictionaries.flows]
values = {values(flows)}
[dictionaries.imports]
values = {values(imports)}
[dictionaries.sessions]
values = {values(sessions)}
[dictionaries.flow_or_mapping]
values = {values(flows + mappings)}

[parameters]
"header.X-Client-Account-Id" = {{ dictionary = "client", probability = 0.8 }}
"header.X-Engagement-Id" = {{ dictionary = "engagement", probability = 0.8 }}
"path.flow_id" = {{ dictionary = "flows", probability = 0.5 }}
"query.flow_id" = {{ dictionary = "flows", probability = 0.5 }}
"path.import_id" = {{ dictionary = "imports", probability = 0.5 }}
"path.session_id" = {{ dictionary = "sessions", probability = 0.5 }}
"path.id" = {{ dictionary = "flow_or_mapping", probability = 0.5 }}

# The one exemption: an upload's file must be CSV text in UTF-8, which a schema cannot say
# of a binary multipart part, so a schema-valid PNG is rightly refused (422 invalid_csv).
# Every other check still runs on it, and the upload has its own property test of hostile
# files (tests/it/http/csv_upload.rs).
[[operations]]
include-path-regex = "^/api/admin/"
headers = {{ Authorization = "Bearer {admin_token}" }}

[[operations]]
include-path = "/api/v3/data-import/imports/upload"
checks.positive_data_acceptance.enabled = false
"""
        )
    print(
        f"fuzz: tenant {client}:{engagement}, {len(flows)} flows, {len(imports)} imports, "
        f"{len(sessions)} session ids, {len(mappings)} mappings",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
