from pathlib import Path

from forewarn.localrun import EVERY_SERVICE, SERVICES, LocalPipeline


def _pipeline(replicas: dict[str, int]) -> LocalPipeline:
    ports = {name: 9000 + i for i, name in enumerate([*SERVICES, "features-2", "features-3"])}
    return LocalPipeline(env={"FOREWARN_FEATURES__DATADIR": "/tmp/fw"}, log_dir=Path("/tmp/logs"), ports=ports,
                         replicas=replicas)


def test_replicas_run_the_same_service_with_their_own_port_log_and_faust_folder() -> None:
    pipeline = _pipeline({"features": 3})
    assert pipeline.instances("features") == ["features", "features-2", "features-3"]
    assert pipeline.instances("scorer") == ["scorer"]
    second = pipeline["features-2"]
    assert second.service == "features" and second.port == 9004
    assert second.log_path.name == "features-2.log"
    assert second.env["FOREWARN_FEATURES__PORT"] == "9004"
    assert second.env["FOREWARN_FEATURES__DATADIR"] == "/tmp/fw-features-2"
    assert pipeline["features"].env["FOREWARN_FEATURES__DATADIR"] == "/tmp/fw"


def test_one_process_per_service_by_default() -> None:
    pipeline = _pipeline({})
    assert sorted(pipeline.services) == sorted(EVERY_SERVICE)
    assert all(process.service == name for name, process in pipeline.services.items())
