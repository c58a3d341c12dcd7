"""The `stacktune` command: parses arguments and hands over to the module that does the work."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _datasets(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from stacktune.datasets import list_datasets

    rows = [asdict(info) for info in list_datasets()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ("name", "task", "length", "channels", "classes", "source")
    widths = {c: max(len(c), *(len(str(r[c] if r[c] is not None else "-")) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c] if row[c] is not None else "-").ljust(widths[c]) for c in columns))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .single import print_summary, run_train

    print_summary(run_train(args.config, seed=args.seed, tracking_uri=args.tracking_uri), as_json=args.json)
    return 0


def _search(args: argparse.Namespace) -> int:
    from .run import run_search_command

    return run_search_command(args)


def _export(args: argparse.Namespace) -> int:
    from .export import export_command

    return export_command(args)


def _ui(args: argparse.Namespace) -> int:
    from .ui import ui_command

    return ui_command(args)


def _report(args: argparse.Namespace) -> int:
    from .export import report_command

    return report_command(args)


def _cluster(name: str):
    """The handler of a cluster command, imported only when it runs."""

    def handler(args: argparse.Namespace) -> int:
        from . import submit

        return getattr(submit, f"{name}_command")(args)

    return handler


def _depth_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected depths like 1,2,3, got {text!r}") from None


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="override the spec's name (MLflow experiment and output folder)")
    p.add_argument("--depths", type=_depth_list, help="override the spec's depths, e.g. 1,2,3")
    p.add_argument("--trials-per-depth", type=int, help="override the spec's trials_per_depth")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--seeds", type=int, help="override evaluation.seeds (0: no re-evaluation on the test split)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stacktune",
        description="Tune each depth of a stacked LSTM on its own, with the same budget, and compare the best of each.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_datasets)

    tracking_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"
    p = sub.add_parser("train", help="train one configuration and log it to MLflow")
    p.add_argument("config", help="a config YAML (the format `stacktune search` exports)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--tracking-uri", help=tracking_help)
    p.set_defaults(func=_train)

    p = sub.add_parser("search", help="tune every depth with its own Optuna study on Ray Tune")
    p.add_argument("spec", help="a search spec YAML")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--tracking-uri", help=tracking_help)
    _add_overrides(p)
    p.add_argument("--json", action="store_true", help="print only comparison.json on stdout")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of the same name")
    p.add_argument(
        "--storage-path",
        help="where trial checkpoints go on a multi-node cluster: a folder every node sees, or s3://bucket/prefix "
        "(default: $STACKTUNE_STORAGE_PATH, else OUT/NAME/ray)",
    )
    # Set by `stacktune submit`: the job's folder, outside which a spec may name no file.
    p.add_argument("--confine", help=argparse.SUPPRESS)
    p.set_defaults(func=_search)

    address_help = "the cluster's Jobs API, like http://HEAD:8265 (default: $RAY_ADDRESS)"
    p = sub.add_parser("submit", help="run a search as a job on a Ray cluster (the spec and its CSV travel with it)")
    p.add_argument("spec", help="a search spec YAML")
    p.add_argument("--address", help=address_help)
    p.add_argument("--tracking-uri", help="MLflow tracking URI the job logs to (default: the cluster's $MLFLOW_TRACKING_URI)")
    p.add_argument("--storage-path", help="trial checkpoints: a folder every node sees, or s3://bucket/prefix "
                   "(default: the cluster's $STACKTUNE_STORAGE_PATH)")
    p.add_argument("--wait", action="store_true", help="follow the job's log and exit with the search's own status")
    _add_overrides(p)
    p.set_defaults(func=_cluster("submit"))

    p = sub.add_parser("jobs", help="list the searches submitted to a Ray cluster")
    p.add_argument("--address", help=address_help)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cluster("jobs"))

    p = sub.add_parser("logs", help="print a submitted search's log")
    p.add_argument("job", help="the job id `stacktune submit` printed")
    p.add_argument("--address", help=address_help)
    p.add_argument("--follow", "-f", action="store_true", help="follow the log until the job ends")
    p.set_defaults(func=_cluster("logs"))

    p = sub.add_parser("stop", help="stop a submitted search (finished trials are kept)")
    p.add_argument("job", help="the job id `stacktune submit` printed")
    p.add_argument("--address", help=address_help)
    p.set_defaults(func=_cluster("stop"))

    p = sub.add_parser("export", help="write a search's best configs again, from MLflow alone")
    p.add_argument("name", help="the search name (its MLflow experiment)")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--tracking-uri", help=tracking_help)
    p.set_defaults(func=_export)

    p = sub.add_parser("report", help="rebuild a search's report and plots, from MLflow alone")
    p.add_argument("name", help="the search name (its MLflow experiment)")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--tracking-uri", help=tracking_help)
    p.set_defaults(func=_report)

    p = sub.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 over the searches' store, until Ctrl-C")
    p.add_argument("--tracking-uri", help=tracking_help)
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
    p.add_argument("--name", help="the search to print the runs page of (default: every search in the store)")
    p.set_defaults(func=_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or not getattr(args, "json", False) else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    from .errors import StacktuneError

    try:
        return args.func(args)
    except StacktuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
