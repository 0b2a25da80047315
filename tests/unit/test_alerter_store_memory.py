"""The alerter store contract (tests/alerter_store_contract.py) against the in-memory store the service
layer's unit tests use."""

from __future__ import annotations

from tests.alerter_store_contract import AlertStoreContract

from forewarn.services.alerter.adapters.memory import InMemoryAlertStore


class TestInMemoryAlertStore(AlertStoreContract):
    def make_store(self) -> InMemoryAlertStore:
        return InMemoryAlertStore()
