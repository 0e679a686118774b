"""`python -m tollgate.kit.topics_init`: create every contract topic, then exit.

The topic-init job of docker-compose and Helm. Settings come from `TOLLGATE_<NAME>`
(e.g. `TOLLGATE_KAFKA_BOOTSTRAP_SERVERS`, `TOLLGATE_KAFKA_REPLICATION_FACTOR`).
"""

from __future__ import annotations

import asyncio

from pydantic_settings import SettingsConfigDict

from tollgate.contracts.topics import ALL_TOPICS
from tollgate.kit.kafka import ensure_topics
from tollgate.kit.settings import ServiceSettings


class TopicInitSettings(ServiceSettings):
    """Only the Kafka fields matter here."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore")


def main() -> None:
    asyncio.run(ensure_topics(TopicInitSettings(), ALL_TOPICS))
    print(f"{len(ALL_TOPICS)} topics present")


if __name__ == "__main__":
    main()
