"""Interop check: a stock confluent-kafka consumer with the stock
AvroDeserializer reads `events.conversation` from the beginning and decodes
every record through the schema registry. Reads until it has seen at least
MIN_RECORDS records and then nothing new for two seconds. Prints one JSON
line: record and decode counts, counts per record type, decode errors and
the message ids of MessageSent records.

usage: consume_events.py BROKERS REGISTRY_URL MIN_RECORDS
"""
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC = "events.conversation"


def main(brokers, registry_url, min_records):
    registry = SchemaRegistryClient({"url": registry_url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "interop-python",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    consumer.assign([TopicPartition(TOPIC, partition, 0) for partition in partitions])
    records, decoded, errors, types, message_ids = 0, 0, [], {}, []
    deadline = time.time() + 60
    last_new = time.time()
    while time.time() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            if records >= min_records and time.time() - last_new > 2:
                break
            continue
        if message.error():
            errors.append(str(message.error()))
            continue
        records += 1
        last_new = time.time()
        try:
            value = deserialize(message.value(), SerializationContext(TOPIC, MessageField.VALUE))
        except Exception as error:  # any failure to decode is what this check looks for
            errors.append(f"{message.partition()}@{message.offset()}: {error}")
            continue
        decoded += 1
        schema_id = int.from_bytes(message.value()[1:5], "big")
        name = json.loads(registry.get_schema(schema_id).schema_str)["name"]
        types[name] = types.get(name, 0) + 1
        if name == "MessageSent":
            message_ids.append(str(value["message_id"]))
    consumer.close()
    print(json.dumps({"records": records, "decoded": decoded, "types": types, "errors": errors[:20], "message_ids": message_ids}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
