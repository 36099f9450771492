"""Schemathesis hooks for fuzzing Caseport (loaded with SCHEMATHESIS_HOOKS=hooks).

- Path parameters mostly name things that exist (a client of the demo data, the configured
  mail provider), so requests reach the rules instead of stopping at 404.
- A check that no request changes Caseport's records and then fails: the business tables are
  fingerprinted before each call and compared after any answer of 400 or more. (Throttle
  counters and the audit log record attempts, failed ones too, by design.)
"""

import hashlib
import os
import sqlite3
from contextlib import closing

import schemathesis

DB = os.environ["CASEPORT_FUZZ_DB"]
PROVIDER = os.environ.get("CASEPORT_FUZZ_PROVIDER", "postmark")

BUSINESS = (
    ("clients", "id"),
    ("staff", "id"),
    ("caseload_assignments", "staff_id, client_id"),
    ("credentials", "owner_kind, owner_id"),
    ("portal_resets", "id"),
    ("mail_deliveries", "id"),
)


def _connect():
    return closing(sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=10))


def fingerprint():
    digest = hashlib.sha256()
    with _connect() as con:
        for table, order in BUSINESS:
            for row in con.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def client_ids():
    with _connect() as con:
        return [row[0] for row in con.execute("SELECT id FROM clients ORDER BY id")]


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if not path_parameters:
        return path_parameters
    if "provider" in path_parameters:
        path_parameters["provider"] = PROVIDER
    drawn = path_parameters.get("id")
    # Three in four name an existing client; the rest stay as drawn.
    if isinstance(drawn, int) and drawn % 4 != 0:
        ids = client_ids()
        if ids:
            path_parameters["id"] = ids[drawn % len(ids)]
    return path_parameters


_before = {}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    _before[id(case)] = fingerprint()


@schemathesis.check
def failed_requests_change_nothing(ctx, response, case):
    before = _before.pop(id(case), None)
    if before is None or response.status_code < 400:
        return
    if fingerprint() != before:
        raise AssertionError(
            f"{case.method} {case.path} answered {response.status_code} after changing Caseport's records"
        )
