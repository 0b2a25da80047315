"""The alerter store contract (tests/alerter_store_contract.py) against RedisAlertStore on the real local
Redis, each test under its own random key prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from tests.alerter_store_contract import AlertStoreContract

from forewarn.services.alerter.adapters.redis_store import RedisAlertStore
from forewarn.settings import RedisSettings


class TestRedisAlertStore(AlertStoreContract):
    @pytest.fixture(autouse=True)
    def _redis(self, stack: object, uid: str) -> Iterator[None]:
        self.client = redis.Redis.from_url(RedisSettings().url, decode_responses=True)
        self.prefix = f"test-{uid}"
        yield
        for key in self.client.scan_iter(match=f"{self.prefix}:*"):
            self.client.delete(key)
        self.client.close()

    def make_store(self) -> RedisAlertStore:
        return RedisAlertStore(self.client, self.prefix, alert_retention_s=60, done_marker_ttl_s=60)
