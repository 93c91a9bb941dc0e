#!/usr/bin/env python3
"""A store's daily sales, built from the ledger topic as a data team would build them.

Reads `inventory.ledger.v1` with the Confluent Kafka client for Python: from the beginning of
every partition to where each ended when it started, as `read_committed` (so it sees every
committed ledger row, and nothing of an aborted transaction), each record's schema looked up
in the schema registry by the id the record carries (the Confluent wire format). It keeps each
ledger row once — deduplicated by (source_partition, source_offset), the ledger row's place
in the movements topic, never by movement_id — in a DuckDB table `ledger`, and builds
`daily_sales`: per store and local day, the units sold, the revenue, the number of sales and
the units removed, applied movements only, a sale or removal that an applied VOID took back
not counted. Those are the figures of query-api's `GET /v1/stores/{id}/reports/sales`.

    python daily_sales.py --bootstrap 127.0.0.1:19092 \\
        --registry http://127.0.0.1:18081/apis/ccompat/v7 \\
        --store-timezone 1=Asia/Kolkata --database sales.duckdb

It prints the table as JSON, one row a line. A store's days are local days in its timezone
(`stores.timezone` in PostgreSQL; UTC unless given here). Records written before the topics
moved to the Confluent wire format (Avro single-object encoding, `C3 01`) are skipped and
counted: they age out with the topic's retention.
"""

import argparse
import json
import sys
import time
import uuid
import zoneinfo

import duckdb
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

LEDGER = "inventory.ledger.v1"


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--registry", required=True, help="the registry's Confluent-compatible API")
    parser.add_argument("--topic-prefix", default="", help="KAFKA_TOPIC_PREFIX of the deployment")
    parser.add_argument(
        "--store-timezone",
        action="append",
        default=[],
        metavar="STORE=ZONE",
        help="a store's IANA timezone (repeat per store; others: UTC)",
    )
    parser.add_argument("--database", default=":memory:", help="DuckDB file (default: in memory)")
    parser.add_argument("--within", type=float, default=60.0, help="seconds to read for at most")
    return parser.parse_args()


CONFLUENT_MAGIC = b"\x00"


def read_ledger(bootstrap, registry_url, topic, within, skipped):
    """Every committed ledger entry on `topic` up to where its partitions ended at the start;
    `skipped` counts the records in another encoding."""
    registry = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Not committed anywhere: this reader assigns its partitions itself.
            "group.id": f"daily-sales-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if metadata.topics[topic].error is not None:
            raise KafkaException(metadata.topics[topic].error)
        partitions = sorted(metadata.topics[topic].partitions)
        # read_committed: the end a reader can reach is the last stable offset.
        ends = {
            partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in partitions
        }
        pending = {partition for partition, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in pending])
        context = SerializationContext(topic, MessageField.VALUE)
        deadline = time.monotonic() + within
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(pending)} did not reach their end")
            message = consumer.poll(0.5)
            if message is not None:
                if message.error() is not None:
                    raise KafkaException(message.error())
                if message.value()[:1] == CONFLUENT_MAGIC:
                    yield deserialize(message.value(), context)
                else:
                    skipped[0] += 1
            # Transaction markers take offsets too: the position says where a partition is.
            for position in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
                if position.offset >= ends[position.partition]:
                    pending.discard(position.partition)
    finally:
        consumer.close()


def local_day(at, zone):
    return at.astimezone(zone).date()


def main():
    args = arguments()
    zones = {}
    for pair in args.store_timezone:
        store, _, name = pair.partition("=")
        zones[int(store)] = zoneinfo.ZoneInfo(name)
    utc = zoneinfo.ZoneInfo("UTC")

    database = duckdb.connect(args.database)
    database.execute(
        """CREATE OR REPLACE TABLE ledger (
            source_partition INTEGER, source_offset BIGINT, movement_id UUID, store_id BIGINT,
            product_id BIGINT, kind VARCHAR, status VARCHAR, quantity BIGINT,
            unit_price_paise BIGINT, voids_movement_id UUID, occurred_at TIMESTAMPTZ,
            day DATE, PRIMARY KEY (source_partition, source_offset))"""
    )
    rows = {}
    skipped = [0]
    topic = args.topic_prefix + LEDGER
    for entry in read_ledger(args.bootstrap, args.registry, topic, args.within, skipped):
        key = (entry["source_partition"], entry["source_offset"])
        zone = zones.get(entry["store_id"], utc)
        rows[key] = (
            *key,
            str(entry["movement_id"]),
            entry["store_id"],
            entry["product_id"],
            entry["kind"],
            entry["status"],
            entry["quantity"],
            entry["unit_price_paise"],
            None if entry["voids_movement_id"] is None else str(entry["voids_movement_id"]),
            entry["occurred_at"],
            local_day(entry["occurred_at"], zone),
        )
    if rows:
        database.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(rows.values()))
    database.execute(
        """CREATE OR REPLACE TABLE daily_sales AS
        WITH applied AS (SELECT * FROM ledger WHERE status = 'APPLIED'),
        taken_back AS (
            SELECT store_id, voids_movement_id AS movement_id FROM applied WHERE kind = 'VOID'
        ),
        counted AS (
            SELECT * FROM applied a
            WHERE kind IN ('SALE', 'REMOVAL')
              AND NOT EXISTS (SELECT 1 FROM taken_back t
                              WHERE t.store_id = a.store_id AND t.movement_id = a.movement_id)
        )
        SELECT store_id, day,
            COALESCE(SUM(quantity) FILTER (WHERE kind = 'SALE'), 0)::HUGEINT AS units_sold,
            COALESCE(SUM(quantity::HUGEINT * COALESCE(unit_price_paise, 0))
                FILTER (WHERE kind = 'SALE'), 0)::HUGEINT AS revenue_paise,
            COUNT(*) FILTER (WHERE kind = 'SALE') AS sales,
            COALESCE(SUM(quantity) FILTER (WHERE kind = 'REMOVAL'), 0)::HUGEINT AS units_removed
        FROM counted GROUP BY store_id, day ORDER BY store_id, day"""
    )
    columns = ["store_id", "day", "units_sold", "revenue_paise", "sales", "units_removed"]
    for row in database.execute(f"SELECT {', '.join(columns)} FROM daily_sales").fetchall():
        record = dict(zip(columns, row))
        record["day"] = record["day"].isoformat()
        print(json.dumps(record, default=int))
    print(f"{len(rows)} ledger rows read, {skipped[0]} older records skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
