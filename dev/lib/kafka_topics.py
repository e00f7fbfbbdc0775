"""Check that the local brokers answer, or create the platform's topics (and their .dlq topics)."""

from __future__ import annotations

import argparse
import sys

from confluent_kafka.admin import AdminClient

from vap_common.kafka import ensure_topics
from vap_common.topics import all_topic_names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--check", action="store_true", help="only check that the brokers answer metadata requests")
    parser.add_argument("--brokers", type=int, default=1, help="with --check: how many brokers must be in the cluster")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.connection.setup.timeout.ms": 2000})
    if args.check:
        metadata = admin.list_topics(timeout=3)
        return 0 if len(metadata.brokers) >= args.brokers else 1
    created = ensure_topics(admin, all_topic_names())
    print(f"    topics: {len(created)} created, {len(all_topic_names()) - len(created)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
