#!/usr/bin/python3
"""Validates JSON lines against a JSON Schema (Debian's python3-jsonschema).
Usage: validate_schema.py SCHEMA FILE; prints each failing line and why; exit 1 if any."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for n, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
    for err in validator.iter_errors(json.loads(line)):
        bad += 1
        print(f"{sys.argv[2]}:{n}: {'/'.join(map(str, err.path))}: {err.message}")
sys.exit(1 if bad else 0)
