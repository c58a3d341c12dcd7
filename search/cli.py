"""The `stacktune` command: argparse only; each handler passes typed arguments to its command in `interfaces/`."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys


def _datasets(args: argparse.Namespace) -> int:
    from .interfaces.datasets import datasets_command

    return datasets_command(as_json=args.json)


def _schema(args: argparse.Namespace) -> int:
    from .interfaces.schema import schema_command

    return schema_command(args.kind, out=args.out)


def _init(args: argparse.Namespace) -> int:
    from .interfaces.init import init_command

    return init_command(args.path, example=args.example)


def _train(args: argparse.Namespace) -> int:
    from .interfaces.train import print_summary, run_train

    print_summary(run_train(args.config, seed=args.seed, tracking_uri=args.tracking_uri), as_json=args.json)
    return 0


def _overrides(args: argparse.Namespace):
    from .interfaces.overrides import SpecOverrides

    return SpecOverrides(
        name=args.name,
        depths=args.depths,
        trials_per_depth=args.trials_per_depth,
        epochs=args.epochs,
        seeds=args.seeds,
        replicates=args.replicates,
        origins=args.origins,
    )


def _search(args: argparse.Namespace) -> int:
    from .interfaces.search import search_command

    return search_command(
        args.spec,
        overrides=_overrides(args),
        out=args.out,
        address=args.address,
        tracking_uri=args.tracking_uri,
        as_json=args.json,
        resume=args.resume,
        storage_path=args.storage_path,
        confine=args.confine,
        register=args.register,
        quiet=args.quiet,
    )


def _export(args: argparse.Namespace) -> int:
    from .interfaces.results import export_command

    return export_command(
        args.name, out=args.out, tracking_uri=args.tracking_uri, as_json=args.json, register=args.register
    )


def _report(args: argparse.Namespace) -> int:
    from .interfaces.results import report_command

    return report_command(args.name, out=args.out, tracking_uri=args.tracking_uri, as_json=args.json)


def _ui(args: argparse.Namespace) -> int:
    from .interfaces.ui import ui_command

    return ui_command(
        tracking_uri=args.tracking_uri, port=args.port, name=args.name, verbose=args.verbose, as_json=args.json
    )


def _submit(args: argparse.Namespace) -> int:
    from .interfaces.cluster import submit_command

    return submit_command(
        args.spec,
        overrides=_overrides(args),
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage_path=args.storage_path,
        wait=args.wait,
        resume=args.resume,
        as_json=args.json,
        register=args.register,
    )


def _jobs(args: argparse.Namespace) -> int:
    from .interfaces.cluster import jobs_command

    return jobs_command(address=args.address, as_json=args.json)


def _logs(args: argparse.Namespace) -> int:
    from .interfaces.cluster import logs_command

    return logs_command(args.job, address=args.address, follow=args.follow)


def _stop(args: argparse.Namespace) -> int:
    from .interfaces.cluster import stop_command

    return stop_command(args.job, address=args.address, as_json=args.json)


def _depth_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected depths like 1,2,3, got {text!r}") from None


def _seeds(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or auto, got {text!r}") from None


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="override the spec's name (MLflow experiment and output folder)")
    p.add_argument("--depths", type=_depth_list, help="override the spec's depths, e.g. 1,2,3")
    p.add_argument("--trials-per-depth", type=int, help="override the spec's trials_per_depth")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument(
        "--replicates", type=int, help="override replicates: independent searches per depth (R times the trials)"
    )
    p.add_argument(
        "--seeds",
        type=_seeds,
        help="override evaluation.seeds: a count (0: no evaluation on the test split) or auto (rounds until decided)",
    )
    p.add_argument(
        "--origins",
        type=int,
        help="override evaluation.origins: data origins each best is retrained and scored at (K times the retrainings)",
    )


class _PrintVersion(argparse.Action):
    """`--version`: print `stacktune X.Y.Z` on stdout and exit; the version is looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import version  # tens of milliseconds: only for --version

        print(f"stacktune {version('stacktune')}")
        parser.exit()


_TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"
_RESULT_JSON_HELP = "print one JSON object (the search, its MLflow run, its verdict, the files written), not paths"
_REGISTER_HELP = (
    "add the overall best model to MLflow's Model Registry as a new version of NAME, with the verdict and its config"
)
_ADDRESS_HELP = "the cluster's Jobs API, like http://HEAD:8265 (default: $RAY_ADDRESS)"


_VERBOSE_HELP = "more log output on stderr (debug messages)"
_QUIET_HELP = "only warnings and errors on stderr: no progress, no messages"


def _add_chatter(parser: argparse.ArgumentParser, *, default) -> None:
    """-v and -q, which may come before the subcommand or after it."""
    chatter = parser.add_mutually_exclusive_group()
    chatter.add_argument("-v", "--verbose", action="store_true", default=default, help=_VERBOSE_HELP)
    chatter.add_argument("-q", "--quiet", action="store_true", default=default, help=_QUIET_HELP)


class _Subcommands(argparse._SubParsersAction):
    """Subcommands that each take -v and -q too, without undoing the same flag given before the subcommand."""

    def add_parser(self, name, **kwargs):
        parser = super().add_parser(name, **kwargs)
        # SUPPRESS: a subcommand's parser sets them only when they are given after it.
        _add_chatter(parser, default=argparse.SUPPRESS)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stacktune",
        description="Tune each depth of a stacked LSTM on its own, with the same budget, and compare the best of each.",
    )
    _add_chatter(parser, default=False)
    parser.add_argument("--version", action=_PrintVersion, help="print stacktune's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_Subcommands)
    _add_run_commands(sub)
    _add_cluster_commands(sub)
    _add_results_commands(sub)
    return parser


def _add_run_commands(sub) -> None:
    """Adds the subcommands that run here: init, datasets, schema, train and search."""
    p = sub.add_parser("init", help="write a starter search spec (an example shipped with stacktune) to edit and run")
    p.add_argument("path", nargs="?", help="the file to write, never overwritten (default: ./EXAMPLE.yaml)")
    # Checked by the command rather than by `choices`, so that the shipped examples are read only when init runs.
    p.add_argument(
        "--example", default="demo", help="which example: demo (default), sunspots-depths, width-vs-depth, ..."
    )
    p.set_defaults(func=_init)

    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_datasets)

    p = sub.add_parser("schema", help="print the JSON Schema of a search spec or training config, for editors")
    # Checked by the command rather than by `choices`, so that a wrong one is one `error:` line like other bad input.
    p.add_argument(
        "kind", nargs="?", default="spec", metavar="{spec,train}", help="spec (default) or train: which file's schema"
    )
    p.add_argument("--out", metavar="FILE", help="write the schema to FILE instead of stdout")
    p.set_defaults(func=_schema)

    p = sub.add_parser("train", help="train one configuration and log it to MLflow")
    p.add_argument("config", help="a config YAML (the format `stacktune search` exports)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--tracking-uri", help=_TRACKING_HELP)
    p.set_defaults(func=_train)

    p = sub.add_parser("search", help="tune every depth with its own Optuna study on Ray Tune")
    p.add_argument("spec", help="a search spec YAML")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--tracking-uri", help=_TRACKING_HELP)
    _add_overrides(p)
    p.add_argument("--json", action="store_true", help="print only comparison.json on stdout")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of the same name")
    p.add_argument("--register", metavar="NAME", help=_REGISTER_HELP)
    p.add_argument(
        "--storage-path",
        help="where trial checkpoints go on a multi-node cluster: a folder every node sees, or s3://bucket/prefix "
        "(default: $STACKTUNE_STORAGE_PATH, else OUT/NAME/ray)",
    )
    # Set by `stacktune submit`: the job's folder, outside which a spec may name no file.
    p.add_argument("--confine", help=argparse.SUPPRESS)
    p.set_defaults(func=_search)


def _add_cluster_commands(sub) -> None:
    """Adds the subcommands that talk to a Ray cluster's Jobs API: submit, jobs, logs and stop."""
    p = sub.add_parser("submit", help="run a search as a job on a Ray cluster (the spec and its CSV travel with it)")
    p.add_argument("spec", help="a search spec YAML")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI the job logs to (default: the cluster's $MLFLOW_TRACKING_URI)"
    )
    p.add_argument(
        "--storage-path",
        help="trial checkpoints: a folder every node sees, or s3://bucket/prefix "
        "(default: the cluster's $STACKTUNE_STORAGE_PATH)",
    )
    p.add_argument("--wait", action="store_true", help="follow the job's log and exit with the search's own status")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (job, search, status; with --wait the final status and exit code, the log on "
        "stderr)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a submitted search of the same name that was stopped or lost with its head, from its studies "
        "(the cluster's study database) and its MLflow runs",
    )
    p.add_argument("--register", metavar="NAME", help=_REGISTER_HELP)
    _add_overrides(p)
    p.set_defaults(func=_submit)

    p = sub.add_parser("jobs", help="list the searches submitted to a Ray cluster")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_jobs)

    p = sub.add_parser("logs", help="print a submitted search's log")
    p.add_argument("job", help="the job id `stacktune submit` printed")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--follow", "-f", action="store_true", help="follow the log until the job ends")
    p.set_defaults(func=_logs)

    p = sub.add_parser("stop", help="stop a submitted search (finished trials are kept)")
    p.add_argument("job", help="the job id `stacktune submit` printed")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--json", action="store_true", help="print the job and its final status as one JSON object")
    p.set_defaults(func=_stop)


def _add_results_commands(sub) -> None:
    """Adds the subcommands that read a finished search back from MLflow: export, report and ui."""
    p = sub.add_parser("export", help="write a search's best configs again, from MLflow alone")
    p.add_argument("name", help="the search name (its MLflow experiment)")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--tracking-uri", help=_TRACKING_HELP)
    p.add_argument("--json", action="store_true", help=_RESULT_JSON_HELP)
    p.add_argument("--register", metavar="NAME", help=_REGISTER_HELP)
    p.set_defaults(func=_export)

    p = sub.add_parser("report", help="rebuild a search's report and plots, from MLflow alone")
    p.add_argument("name", help="the search name (its MLflow experiment)")
    p.add_argument("--out", default="stacktune-runs", help="output folder (default: ./stacktune-runs)")
    p.add_argument("--tracking-uri", help=_TRACKING_HELP)
    p.add_argument("--json", action="store_true", help=_RESULT_JSON_HELP)
    p.set_defaults(func=_report)

    p = sub.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 over the searches' store, until Ctrl-C")
    p.add_argument("--tracking-uri", help=_TRACKING_HELP)
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
    p.add_argument("--name", help="the search to print the runs page of (default: every search in the store)")
    p.add_argument(
        "--json", action="store_true", help="print the addresses as one JSON line (url, served, searches: url each)"
    )
    p.set_defaults(func=_ui)


class _Prefixed(logging.Formatter):
    """`warning: ...` and `error: ...` as the commands' own lines read; other messages as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def _log_to_stderr(args: argparse.Namespace) -> None:
    """The `stacktune` logger's messages on stderr: -q only warnings and errors, -v also debug messages; with
    --json only warnings, unless -v (stdout is the answer; stderr stays quiet for scripts)."""
    if args.quiet or (getattr(args, "json", False) and not args.verbose):
        level = logging.WARNING
    else:
        level = logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Prefixed("%(message)s"))
    logger = logging.getLogger("stacktune")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # MLflow's own INFO lines (creating a store's tables, validating a model's input example) only with -v; MLflow
    # sets its level from this variable when it is imported, later (the user's own value wins).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if args.verbose else "WARNING")
    # Matplotlib warns when $HOME holds no writable config folder, and then works from a temporary one.
    if not args.verbose:
        logging.getLogger("matplotlib").setLevel(logging.ERROR)


# The exit status when the answer cannot be written to stdout: it is closed, or on a full disk.
OUTPUT_LOST_EXIT = 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.verbose and args.quiet:
        build_parser().error("argument -q/--quiet: not allowed with argument -v/--verbose")
    _log_to_stderr(args)
    from .errors import StacktuneError

    if sys.stdout is None:  # started with stdout closed (`>&-`): every answer would be lost without a word
        print("error: stdout is closed, so the answer would be lost: redirect it to a file instead", file=sys.stderr)
        return OUTPUT_LOST_EXIT
    try:
        status = args.func(args)
        sys.stdout.flush()  # an answer that cannot be written fails here, not silently at exit
        return status
    except StacktuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        if not _stdout_failed(exc):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more can go there
        print(f"error: cannot write the answer to stdout ({exc.strerror or exc})", file=sys.stderr)
        return OUTPUT_LOST_EXIT


def _stdout_failed(exc: OSError) -> bool:
    """Whether `exc` came from writing the answer to stdout: it names no file, and stdout cannot take a flush or the
    error is one a full or broken output gives (a failed write's bytes are dropped, so a flush may then pass)."""
    if exc.filename is not None:
        return False
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EBADF)


if __name__ == "__main__":
    sys.exit(main())
