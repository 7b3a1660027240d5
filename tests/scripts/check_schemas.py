#!/usr/bin/env python3
"""Checks every JSON Schema in schemas/ is itself valid, and that the fixture files under
tests/data/<kind>/{valid,invalid}/ are accepted / refused by the schema named in SCHEMAS.
The C parsers are checked against the same files by the unit tests, so code and schema stay
in step."""
import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = {"usage_events": "usage-event.schema.json",
           "billing_alerts": "billing-alert.schema.json"}
# Fixture folders whose every file must satisfy a schema (the workers' own tests use them).
ALL_VALID = {"tests/fixtures/stripe": "stripe-event.schema.json"}


def main():
    failures = 0
    for path in sorted((ROOT / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        print(f"ok   schema {path.name}")
    for kind, schema_name in SCHEMAS.items():
        schema = json.loads((ROOT / "schemas" / schema_name).read_text())
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.draft202012_format_checker)
        for expect in ("valid", "invalid"):
            for path in sorted((ROOT / "tests" / "data" / kind / expect).glob("*.json")):
                try:
                    doc = json.loads(path.read_text())
                    errors = list(validator.iter_errors(doc))
                except ValueError as exc:
                    errors = [exc]
                ok = (not errors) if expect == "valid" else bool(errors)
                print(f"{'ok  ' if ok else 'FAIL'} {kind}/{expect}/{path.name}")
                failures += not ok
    for folder, schema_name in ALL_VALID.items():
        schema = json.loads((ROOT / "schemas" / schema_name).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for path in sorted((ROOT / folder).glob("*.json")):
            errors = list(validator.iter_errors(json.loads(path.read_text())))
            print(f"{'ok  ' if not errors else 'FAIL'} {folder}/{path.name}")
            for e in errors[:3]:
                print(f"     {e.message}")
            failures += bool(errors)
    print("schemas and fixtures:", "all agree" if not failures else f"{failures} disagree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
