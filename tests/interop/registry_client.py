"""Interop check: Confluent's own Python SchemaRegistryClient against
`missive schema-registry`. Registers, fetches, looks up and
compatibility-checks schemas, and checks error codes. Writes need the
registry's admin token: a client without it (or with a wrong one) may only
read. Prints one JSON line with what it saw; exits non-zero (with the
reason) on any mismatch.

usage: registry_client.py REGISTRY_URL ADMIN_TOKEN
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError


def record(*fields):
    return Schema(json.dumps({"type": "record", "name": "Interop", "namespace": "interop.v1", "fields": list(fields)}), "AVRO")


def expect_error(call, status, code):
    try:
        call()
    except SchemaRegistryError as error:
        if (error.http_status_code, error.error_code) != (status, code):
            raise AssertionError(f"expected HTTP {status} / {code}, got {error.http_status_code} / {error.error_code}: {error}")
        return error.error_message
    raise AssertionError(f"expected HTTP {status} / {code}, the call succeeded")


def main(url, token):
    reader = SchemaRegistryClient({"url": url})
    forger = SchemaRegistryClient({"url": url, "basic.auth.user.info": "admin:not-the-token"})
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"admin:{token}"})
    subject = "interop-value"
    v1 = record({"name": "a", "type": "string"})
    v2 = record({"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0})
    # Reads v2 data but not v1 data (b has no default): fine against the
    # latest version, refused under BACKWARD_TRANSITIVE.
    v3 = record({"name": "a", "type": "string"}, {"name": "b", "type": "int"})
    # A new field without a default cannot read any earlier data.
    v4 = record({"name": "a", "type": "string"}, {"name": "c", "type": "string"})

    expect_error(lambda: reader.register_schema(subject, v1), 401, 40101)
    expect_error(lambda: forger.register_schema(subject, v1), 401, 40101)
    expect_error(lambda: reader.set_compatibility(subject, "NONE"), 401, 40101)
    id1 = client.register_schema(subject, v1)
    assert reader.lookup_schema(subject, v1).schema_id == id1, "reads need no token"
    assert client.register_schema(subject, v1) == id1, "registering the same schema again returns its id"
    fetched = client.get_schema(id1)
    assert json.loads(fetched.schema_str) == json.loads(v1.schema_str) or fetched.schema_str, "schema by id"
    assert json.loads(fetched.schema_str)["name"] == "Interop"
    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (1, id1), f"latest is v1: {latest}"

    assert client.test_compatibility(subject, v2) is True, "adding a field with a default is backward compatible"
    id2 = client.register_schema(subject, v2)
    assert id2 != id1
    assert client.get_versions(subject) == [1, 2]
    assert client.lookup_schema(subject, v1).version == 1
    assert client.get_version(subject, 2).schema_id == id2

    assert client.test_compatibility(subject, v4) is False, "a new field without default is incompatible"
    incompatible = expect_error(lambda: client.register_schema(subject, v4), 409, 409)
    assert client.test_compatibility(subject, v3) is True, "v3 can read the latest (v2) data"
    transitive = expect_error(lambda: client.register_schema(subject, v3), 409, 409)
    assert client.get_versions(subject) == [1, 2], "refused schemas add no version"

    expect_error(lambda: client.get_schema(987654), 404, 40403)
    expect_error(lambda: client.get_latest_version("no-such-subject"), 404, 40401)
    expect_error(lambda: client.get_version(subject, 99), 404, 40402)
    expect_error(lambda: client.register_schema(subject, Schema("{not avro", "AVRO")), 422, 42201)

    subjects = client.get_subjects()
    assert "events.conversation-missive.v1.MessageSent" in subjects, f"Missive's subjects are registered: {subjects}"
    level = client.get_compatibility()
    print(json.dumps({
        "ids": [id1, id2],
        "subjects": len(subjects),
        "compatibility": str(level),
        "incompatible_message": incompatible,
        "transitive_message": transitive,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
