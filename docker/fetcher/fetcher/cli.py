"""``python -m fetcher SOURCE DEST_ROOT``: the command line and its exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fetcher.errors import ExitCode, FetchError, disk_full_error
from fetcher.fetch import Options, fetch
from fetcher.paths import model_dir
from fetcher.progress import LogFormat, Reporter
from fetcher.source import parse_source
from fetcher.version import __version__

EPILOG = """\
exit codes: 0 complete (already or now), 1 other error, 2 bad usage or source,
3 source not found, 4 missing or rejected credentials, 5 checksum or size mismatch
(a truncated download too), 6 disk full, 7 timed out waiting for another fetcher,
8 the checkpoint is not what --expect says, 9 refused: a symlink under DEST_ROOT or a
listed name that is not a safe path, 130 interrupted (SIGINT or SIGTERM).
The model folder is printed on stdout (its only line); logs go to stderr."""


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _workers(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fetcher",
        description="Fetch pinned model weights into DEST_ROOT, verified and atomically.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="hf://org/name@revision or s3://bucket/prefix/"
    )
    parser.add_argument("dest_root", metavar="DEST_ROOT", help="shared model cache, e.g. /models")
    parser.add_argument(
        "--print-path",
        action="store_true",
        help="print the model folder and exit, without network or file-system access",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="when the model is already complete, re-hash its files against the manifest "
        "(read-only; exit 5 on a mismatch)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=_positive,
        default=3600.0,
        metavar="SECONDS",
        help="how long to wait for another fetcher of the same model (default: 3600)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="how often a waiting fetcher checks for completion (default: 2)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=8,
        metavar="N",
        help="files downloaded in parallel, 1-64 (default: 8)",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="also fetch repository paths matching GLOB (repeatable; first fetch only)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip repository paths matching GLOB (repeatable; first fetch only)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto",
        help="text for people, JSON lines for log collectors; auto: text on a terminal",
    )
    parser.add_argument(
        "--progress-interval",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when not on a terminal (default: 10)",
    )
    parser.add_argument(
        "--expect",
        metavar="JSON",
        help="what the stack's plan assumed, checked before the model counts as complete: "
        '{"key": "modelfleet:models[NAME]", "quant_method": null, "torch_dtype": "bfloat16", '
        '"weight_bytes": N, "weight_bytes_tolerance": 0.15, "max_lora_rank": null} '
        "(all but key optional; exit 8 on a mismatch)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tty = sys.stderr.isatty()
    fmt: LogFormat = ("text" if tty else "json") if args.log_format == "auto" else args.log_format
    reporter = Reporter(fmt, interval=args.progress_interval, live=tty)
    try:
        source = parse_source(args.source)
        if args.print_path:
            print(model_dir(source, args.dest_root), flush=True)
            return ExitCode.OK
        expect = None
        if args.expect is not None:
            from fetcher.expect import parse_expectation  # pydantic: imported only when used

            expect = parse_expectation(args.expect)
        options = Options(
            workers=args.workers,
            wait_timeout=args.wait_timeout,
            poll_interval=args.poll_interval,
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            verify=args.verify,
            expect=expect,
        )
        outcome = fetch(source, args.dest_root, options, reporter)
    except FetchError as exc:
        reporter.error(_one_line(exc.message), exc.code)
        return exc.code
    except KeyboardInterrupt:
        reporter.error("interrupted; a rerun resumes from the verified files", ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        full = disk_full_error(exc)
        if full is not None:
            where = f" writing {full.filename}" if full.filename else f" under {args.dest_root}"
            reporter.error(f"no space left on device{where}: {full.strerror}", ExitCode.DISK_FULL)
            return ExitCode.DISK_FULL
        if isinstance(exc, OSError) and exc.strerror:
            where = f": {exc.filename}" if exc.filename else ""
            reporter.error(_one_line(f"{exc.strerror}{where}"), ExitCode.OTHER)
            return ExitCode.OTHER
        reporter.error(_one_line(f"unexpected error: {type(exc).__name__}: {exc}"), ExitCode.OTHER)
        return ExitCode.OTHER
    print(outcome.folder, flush=True)
    return ExitCode.OK


def _one_line(text: str) -> str:
    return " ".join(text.split())
