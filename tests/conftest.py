"""Shared fixtures. Tests under tests/integration and tests/e2e are marked automatically, and use the
real local stack through the same code as `forewarn stack up`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts[0] in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture
def uid() -> str:
    """A short random id for topic, key and group names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def stack() -> Iterator[object]:
    """The real local stack (Kafka, Redis, MLflow). Started once per session if it is not already up;
    stopped at the end only if this fixture started it."""
    from forewarn.stack.manager import LocalStack

    local = LocalStack()
    already_running = {name for name, state in local.status().items() if state.pid is not None}
    local.up()
    yield local
    if not already_running:
        local.down()


# The secure stack runs beside the default one: its ports are the default stack's plus this offset.
SECURE_PORT_OFFSET = 1000


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A second stack on the secure profile (Kafka, Redis, MLflow only), in its own state folder and on its
    own ports, started once per session for every secure-profile test and stopped at the end."""
    from forewarn.stack.config import StackSettings
    from forewarn.stack.manager import LocalStack

    base = StackSettings()
    options = base.stack.model_copy(update={
        "profile": "secure", "state_dir": tmp_path_factory.mktemp("secure-stack"),
        "kafka_port": base.stack.kafka_port + SECURE_PORT_OFFSET,
        "kafka_controller_port": base.stack.kafka_controller_port + SECURE_PORT_OFFSET,
        "redis_port": base.stack.redis_port + SECURE_PORT_OFFSET,
        "mlflow_port": base.stack.mlflow_port + SECURE_PORT_OFFSET})
    local = LocalStack(base.model_copy(update={"stack": options}), only=("kafka", "redis", "mlflow"))
    local.up()
    yield local
    local.down()


@pytest.fixture
def kafka_settings(stack: object) -> object:
    from forewarn.stack.manager import LocalStack

    assert isinstance(stack, LocalStack)
    return stack.settings.kafka


@pytest.fixture
def topic_factory(stack: object, uid: str) -> Callable[..., str]:
    """Create a fresh topic with a random name: topic_factory("readings", partitions=4)."""
    from forewarn.stack.manager import LocalStack

    assert isinstance(stack, LocalStack)
    counter = iter(range(1_000_000))

    def create(base: str = "t", partitions: int = 1) -> str:
        name = f"test.{base}.{uid}.{next(counter)}"
        stack.ensure_topics([name], partitions=partitions)
        return name

    return create
