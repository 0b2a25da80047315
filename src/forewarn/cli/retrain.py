"""``forewarn retrain``: rebuild the training set, train a challenger and let the promotion gates decide;
``--dry-run`` shows the plan, ``--history`` what past runs did (see forewarn/retraining/)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from forewarn.retraining.chain import Plan
    from forewarn.retraining.settings import RetrainSettings


def _absolute(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


def _history(limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from forewarn.retraining import record
    from forewarn.retraining.settings import RetrainSettings

    path = record.audit_path(RetrainSettings().state_dir)
    rows = record.history_rows(record.read_history(path))[:limit]
    if not rows:
        typer.echo(f"no retraining runs recorded in {path}")
        return
    table = Table(title=f"retraining runs, newest first ({path})")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    Console(width=max(160, Console().width)).print(table)


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain(
        reason: Annotated[str, typer.Option(help="Why this run (the trigger's reason; recorded).")
                          ] = "manual: requested from the command line",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
        history: Annotated[bool, typer.Option("--history", help="Print the recorded runs, newest first.")] = False,
        limit: Annotated[int, typer.Option(min=1, help="Rows of --history.")] = 20,
        lake: Annotated[Path | None, typer.Option("--lake", help="Parquet lake to build the training set from "
                                                                 "(default: FOREWARN_RETRAIN__LAKE_DIR).")] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Use this training set ('etl build --out') "
                                                                 "instead of building one.")] = None,
        catch_up: Annotated[bool | None, typer.Option("--catch-up/--no-catch-up", help="First stream what Kafka "
                                                      "holds into the lake ('etl stream --once').")] = None,
        workdir: Annotated[Path | None, typer.Option(help="Training sets and logs of the runs.")] = None,
        horizon: Annotated[str | None, typer.Option(help="Failure horizon of the training set.")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of folds, search and models.")] = None,
        quick: Annotated[bool | None, typer.Option("--quick/--full", help="Few trials, LightGBM only, or the "
                                                                          "full search.")] = None,
        experiment: Annotated[str, typer.Option(help="MLflow experiment of the training runs.")
                              ] = "forewarn-retrain",
        min_f1: Annotated[float | None, typer.Option(help="Holdout F1 floor (promote's gate).")] = None,
        max_fairness_gap: Annotated[float | None, typer.Option(help="Largest allowed gap between machine "
                                                                    "types.")] = None,
        max_calibration_error: Annotated[float | None, typer.Option(help="Largest allowed holdout ECE.")] = None,
        kafka: Annotated[bool, typer.Option("--kafka/--no-kafka", help="Send the record to 'audit' and the "
                                                                       "model-health event to 'model.health'.")
                         ] = True,
    ) -> None:
        """Retrain behind the gates: training set from the lake, train, then promote only a challenger that
        passes every gate and beats the champion; a refused one leaves the champion and raises a
        model-health alert. Never two runs at once (a Redis lock). Exit 1 when refused or failed."""
        if history:
            _history(limit)
            return
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from forewarn.retraining import chain
        from forewarn.retraining.lock import held, redis_lock, write_last_run
        from forewarn.retraining.settings import RetrainSettings
        from forewarn.training.promote import GateLimits

        settings = RetrainSettings()
        opts = settings.retrain
        request = chain.RetrainRequest(
            # Absolute paths: the training run records its data folder, and promote re-reads it from there.
            reason=reason, workdir=(workdir or opts.workdir).resolve(), lake_dir=_absolute(lake or opts.lake_dir),
            data_dir=_absolute(data or opts.data_dir),
            catch_up=opts.catch_up if catch_up is None else catch_up, horizon=horizon or opts.horizon,
            seed=opts.seed if seed is None else seed, quick=opts.quick if quick is None else quick,
            fairness_limit=opts.fairness_limit,
            limits=GateLimits(opts.min_f1 if min_f1 is None else min_f1,
                              opts.max_fairness_gap if max_fairness_gap is None else max_fairness_gap,
                              opts.max_calibration_error if max_calibration_error is None
                              else max_calibration_error),
            experiment=experiment, keep_runs=opts.keep_runs, runner=opts.runner,
        )
        plan = chain.plan(request)
        if dry_run:
            _print_plan(plan, settings)
            return
        ctx = chain.Context(tracking_uri=settings.mlflow.tracking_uri, model_name=settings.mlflow.model_name,
                            alias=settings.mlflow.champion_alias, state_dir=settings.state_dir,
                            kafka_settings=settings.kafka if kafka else None)
        from forewarn.training.pipeline import require_mlflow

        require_mlflow(ctx.tracking_uri)
        with held(redis_lock(settings.redis, opts.lock_ttl_s)) as lock:
            result = chain.execute(plan, ctx, echo=typer.echo, lock_lost=lock.lost)
            r = result.record
            try:
                write_last_run(lock.client, settings.redis.key_prefix, {
                    "run_id": r["run_id"], "decision": r["decision"], "ended_at": r["ended_at"],
                    "ended_at_s": time.time()})
            except Exception as exc:  # noqa: BLE001 - only the monitor's cooldown after a restart needs it
                result.notes.append(f"last run not written to Redis: {exc}")
        typer.echo(f"retraining {r['run_id']}: {r['decision']} (candidate version {r['candidate_version'] or '-'})")
        for why in r["reasons"]:
            typer.secho(f"  refused because {why}", fg=typer.colors.RED, err=True)
        if r["error"]:
            typer.secho(f"  failed: {r['error']}", fg=typer.colors.RED, err=True)
        champion = r["champion_after"]
        typer.echo(f"champion is {'now ' if r['decision'] == 'promoted' else 'still '}version {champion}"
                   if champion else "there is no champion")
        for note in result.notes:
            typer.echo(f"  {note}")
        typer.echo(f"recorded in {result.audit_path}")
        if r["decision"] not in (chain.PROMOTED, chain.UNCHANGED):
            raise typer.Exit(code=1)


def _print_plan(plan: Plan, settings: RetrainSettings) -> None:
    from forewarn.retraining import chain, record
    req = plan.request
    typer.echo("dry run: nothing is changed")
    typer.echo(f"trigger: {req.reason}")
    typer.echo(f"model: {settings.mlflow.model_name} at {settings.mlflow.tracking_uri} (alias "
               f"{settings.mlflow.champion_alias})")
    try:
        from forewarn.training.pipeline import require_mlflow

        require_mlflow(settings.mlflow.tracking_uri)
        champion = chain.champion_facts(settings.mlflow.tracking_uri, settings.mlflow.model_name,
                                        settings.mlflow.champion_alias)
        typer.echo(f"current champion: {champion}" if champion else "current champion: none")
    except Exception as exc:  # noqa: BLE001 - a dry run still shows the plan without MLflow
        typer.echo(f"current champion: unknown ({exc})")
    if req.data_dir is not None:
        facts = chain.dataset_facts(req.data_dir)
        span = facts["data_range"] or {}
        typer.echo(f"data: {req.data_dir} ({facts['rows']} rows, {span.get('min_iso')} to {span.get('max_iso')}, "
                   f"{facts['dataset_hash']})")
    else:
        typer.echo(f"data: built from the lake {req.lake_dir} into {plan.data_dir} (all of it, including what "
                   "arrived since the last training)")
    typer.echo("commands:")
    for command in plan.commands():
        typer.echo(f"  {command}")
    typer.echo("gates:")
    for gate in chain.gate_descriptions(req.limits):
        typer.echo(f"  {gate}")
    typer.echo(f"record: {record.audit_path(settings.state_dir)} and the Kafka "
               f"{settings.kafka.topic('audit')!r} topic")
