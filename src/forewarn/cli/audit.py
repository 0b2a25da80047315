"""``forewarn audit verify | show | trace | send | init-topic``: the hash-chained audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forewarn.errors import UserError

if TYPE_CHECKING:
    from forewarn.audit.settings import AuditSettings
    from forewarn.audit.trail import AuditTrail

FileOpt = Annotated[Path | None, typer.Option("--file", help="The trail's local mirror (default: "
                                                             "FOREWARN_AUDIT__FILE or <state dir>/audit/trail.jsonl).")]


def _settings() -> AuditSettings:
    from forewarn.audit.settings import AuditSettings

    return AuditSettings()


def _trail(settings: AuditSettings, file: Path | None, *, send: bool = False) -> AuditTrail:
    from forewarn.audit.actions import trail_at

    return trail_at(file or settings.trail_file, settings.kafka if send else None,
                    timeout_s=settings.audit.send_timeout_s, trail_id=settings.audit.trail_id)


def _kafka_copies(settings: AuditSettings) -> list[dict[str, Any]]:
    from forewarn.audit.kafka_io import read_copies

    try:
        return read_copies(settings.kafka)
    except Exception as exc:  # noqa: BLE001 - said as a user error: what to check
        raise UserError(f"cannot read the audit topic {settings.kafka.topic('audit')!r}: {exc}; is Kafka up "
                        "('forewarn stack status')? Or leave out --kafka") from exc


def _one_line(rec: dict[str, Any]) -> str:
    obj = rec.get("object") or {}
    return (f"{rec.get('seq'):>6}  {rec.get('at')}  {rec.get('actor')}  {rec.get('action')}  "
            f"{obj.get('kind')} {obj.get('id')}")


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="The audit trail: verify it, show it, trace an alert back to its data.",
                        no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(
        file: FileOpt = None,
        kafka: Annotated[bool, typer.Option("--kafka/--no-kafka", help="Also compare the file with its copy on "
                                                                       "the Kafka audit topic, and check that "
                                                                       "topic's retention.")] = False,
    ) -> None:
        """Check every record's hash, the seq order and the links: exit 0 when intact, else exit 1 naming
        each bad record and what to do."""
        from forewarn.audit import chain
        from forewarn.audit.kafka_io import topic_config_problems

        settings = _settings()
        trail = _trail(settings, file)
        problems = trail.verify()
        lines = trail.lines()
        notes: list[str] = []
        if kafka:
            copies = _kafka_copies(settings)
            problems += chain.compare_with_copy(lines, copies)
            try:
                notes += topic_config_problems(settings.kafka)
            except Exception as exc:  # noqa: BLE001 - the comparison above still stands
                notes.append(f"could not read the audit topic's config: {exc}")
        records = trail.records()
        if problems or notes:
            for problem in problems:
                typer.secho(f"BAD {problem}", fg=typer.colors.RED)
            for note in notes:
                typer.secho(f"BAD topic: {note}", fg=typer.colors.RED)
            typer.echo(f"audit trail {trail.path}: {len(problems) + len(notes)} problem(s) in {len(records)} "
                       "record(s)")
            raise typer.Exit(1)
        last = records[-1] if records else None
        sent = trail.sent_up_to()
        typer.echo(f"audit trail {trail.path}: intact, {len(records)} record(s)"
                   + (f", seq 1..{last['seq']}, last hash {str(last['hash'])[:19]}…" if last else "")
                   + f"; {sent} confirmed on Kafka" + (", matching the topic" if kafka else ""))

    @audit.command("show")
    def show(
        file: FileOpt = None,
        last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many of the newest records.")] = 20,
        kafka: Annotated[bool, typer.Option("--kafka/--no-kafka", help="Read the Kafka audit topic (every trail) "
                                                                       "instead of the file.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON record a line.")] = False,
    ) -> None:
        """The newest records: seq, time, actor, action, object."""
        settings = _settings()
        if kafka:
            records = sorted(_kafka_copies(settings), key=lambda rec: (str(rec.get("at")), rec.get("seq", 0)))
        else:
            trail = _trail(settings, file)
            if not trail.path.exists():
                raise UserError(f"no audit trail at {trail.path} (pass --file, or --kafka)")
            records = trail.records()
        for rec in records[-last:]:
            typer.echo(json.dumps(rec, sort_keys=True) if as_json else _one_line(rec))

    @audit.command("send")
    def send(file: FileOpt = None) -> None:
        """Send the records Kafka has not confirmed yet (written while it was away)."""
        settings = _settings()
        ok, note = _trail(settings, file, send=True).send_pending()
        typer.echo(note)
        if not ok:
            raise typer.Exit(1)

    @audit.command("init-topic")
    def init_topic() -> None:
        """Create the audit topic, or set it to keep everything (retention.ms=-1, cleanup.policy=delete)."""
        from forewarn.audit.kafka_io import ensure_topic

        try:
            typer.echo(ensure_topic(_settings().kafka))
        except Exception as exc:  # noqa: BLE001 - said as a user error
            raise UserError(f"could not create or configure the audit topic: {exc}; is Kafka up?") from exc

    @audit.command("trace")
    def trace(
        alert_id: Annotated[str, typer.Argument(help="The alert's id (GET /v1/alerts on the alerter).")],
        file: FileOpt = None,
        kafka: Annotated[bool, typer.Option("--kafka/--no-kafka", help="Also read the alert's events on the "
                                                                       "alerts topic and every trail on the audit "
                                                                       "topic.")] = True,
        mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Ask the registry about the model "
                                                                          "version.")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="The chain as one JSON object.")] = False,
    ) -> None:
        """Walk alert -> model version -> training run -> data set hash -> operator actions."""
        from forewarn.audit.trace import build_trace, render

        settings = _settings()
        trail = _trail(settings, file)
        records = trail.records() if trail.path.exists() else []
        events: list[dict[str, Any]] = []
        if kafka:
            seen = {(rec["trail"], rec["seq"]) for rec in records}
            records += [rec for rec in _kafka_copies(settings) if (rec["trail"], rec["seq"]) not in seen]
            events = _alert_events(settings, alert_id)
        first = build_trace(alert_id, records, alert_events=events, model_name=settings.mlflow.model_name,
                            version_facts=None)
        facts = None
        if mlflow and first.model_version:
            facts = _version_facts(settings.mlflow.tracking_uri, first.model_version["model"],
                                   first.model_version["version"])
        result = build_trace(alert_id, records, alert_events=events, model_name=settings.mlflow.model_name,
                             version_facts=facts)
        if as_json:
            typer.echo(json.dumps(result.as_dict(), indent=2, sort_keys=True, default=str))
        else:
            for line in render(result):
                typer.echo(line)


def _alert_events(settings: AuditSettings, alert_id: str) -> list[dict[str, Any]]:
    from forewarn import kafka, topics

    try:
        messages = kafka.read_all(settings.kafka, settings.kafka.topic(topics.ALERTS), timeout_s=60)
    except Exception as exc:  # noqa: BLE001 - said as a user error
        raise UserError(f"cannot read the alerts topic: {exc}; is Kafka up? Or pass --no-kafka") from exc
    events = []
    for message in messages:
        try:
            value = json.loads(message.value())
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict) and value.get("alert_id") == alert_id:
            events.append(value)
    return sorted(events, key=lambda e: (e.get("emitted_at") or 0, e.get("revision") or 0))


def _version_facts(tracking_uri: str, model: str, version: str) -> dict[str, Any] | None:
    from mlflow import MlflowClient

    try:
        mv = MlflowClient(tracking_uri).get_model_version(model, version)
    except Exception:  # noqa: BLE001 - the trace says the registry was not asked
        return None
    tags = dict(mv.tags or {})
    facts: dict[str, Any] = {"run_id": mv.run_id, "data_hash": tags.get("data_hash"),
                             "rows_hash": tags.get("rows_hash"), "feature_set_version": tags.get("feature_set_version"),
                             "promotion": tags.get("promotion.decision")}
    facts.update({k: v for k, v in tags.items() if "dvc" in k.lower()})
    return facts
