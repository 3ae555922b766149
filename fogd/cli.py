"""The ``fogd`` command: ``serve`` runs the daemon; the other subcommands talk to it.

Client subcommands find the daemon with ``--url`` or ``FOGD_URL`` (default
``http://127.0.0.1:8000``), print human tables, or JSON with ``--json``, and exit
non-zero with one clear line when the daemon is unreachable or says no.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Sequence

from fogd import __version__

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_ERROR = 1  # the daemon answered with an error
EXIT_UNREACHABLE = 3  # no daemon at --url


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- client
class Client:
    """A tiny synchronous JSON client for fogd's HTTP API (stdlib only)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)
                message = f"{err.get('error', 'error')}: {err.get('detail', raw.decode(errors='replace'))}"
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace") or exc.reason
            raise CliError(f"fogd answered {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach fogd at {self.url} ({reason}); is `fogd serve` running? "
                           "(set --url or FOGD_URL)", EXIT_UNREACHABLE) from None


# ---------------------------------------------------------------------- output
def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table; ``None`` shows as ``-``."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.2f}"
        if isinstance(v, dict):
            return ",".join(f"{k}={val}" for k, val in v.items()) or "-"
        return str(v)
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


READING_COLUMNS = ["node", "timestamp", "temperature", "humidity", "power", "comfortIndex", "alertStatus", "source"]


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)


# ---------------------------------------------------------------------- commands
def cmd_serve(args: argparse.Namespace) -> int:
    from fogd.config import load_config
    from fogd.daemon import serve

    env = dict(os.environ)
    if args.listen:
        env["FOGD_LISTEN"] = args.listen
    if args.db:
        env["FOGD_DB"] = args.db
    config = load_config(args.config or env.get("FOGD_CONFIG"), env)
    logging.basicConfig(level=config.log.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(config)
    return 0


def _parse_extra(items: list[str]) -> dict[str, float]:
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            extra[key] = float(value)
        except ValueError:
            raise CliError(f"--extra {item!r}: expected NAME=NUMBER") from None
    return extra


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.file:
        with (sys.stdin if args.file == "-" else open(args.file)) as f:
            body = json.load(f)
    else:
        if not args.node:
            raise CliError("fogd ingest: give NODE and metrics, or --file")
        body = {"node": args.node, "source": "cli"}
        for key in ("temperature", "humidity", "power", "seq", "timestamp", "role"):
            if getattr(args, key) is not None:
                body[key] = getattr(args, key)
        if args.extra:
            body["extra"] = _parse_extra(args.extra)
    result = args.client.request("POST", "/ingest", body)
    if "received" in result:
        human = f"received {result['received']}, stored {result['stored']}, duplicates {result['duplicates']}"
    else:
        human = table([result], READING_COLUMNS) + ("\n(duplicate: already stored)" if result.get("duplicate") else "")
    emit(args, result, human)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    result = args.client.request("GET", f"/nodes/{urllib.parse.quote(args.node, safe='')}/data",
                                 query={"limit": args.limit, "since": args.since, "until": args.until})
    human = f"{result['node']} ({result['role']}), {result['count']} readings shown, newest first\n"
    human += table(result["history"], READING_COLUMNS[1:] + ["seq"])
    emit(args, result, human)
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/api/live_data")
    emit(args, result, table(result, ["node", "role"] + READING_COLUMNS[1:]) if result else "no readings yet")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from fogd.config import load_config
    from fogd.plugins.host import build_plugin_host

    config = load_config(args.config or os.environ.get("FOGD_CONFIG"))
    host = build_plugin_host(config.plugins.disabled, config.plugins.entrypoints)
    host.collect_registries(config)
    rows = [{"name": i.name, "origin": i.origin, "status": i.status,
             "hooks": ", ".join(i.hooks) or i.error or "-"} for i in host.infos.values()]
    registered = {kind: sorted(items) for kind, items in host.registries.items()}
    human = table(rows, ["name", "origin", "status", "hooks"])
    for kind, names in registered.items():
        human += f"\n{kind}: {', '.join(names) or '-'}"
    emit(args, {"plugins": rows, "registered": registered}, human)
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("FOGD_URL", DEFAULT_URL),
                        help="fogd's base URL (env FOGD_URL; default %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for fogd")

    p = argparse.ArgumentParser(prog="fogd", description="fogd: the control tower of a fog deployment.")
    p.add_argument("--version", action="version", version=f"fogd {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the daemon")
    s.add_argument("--config", help="path to fogd.toml (env FOGD_CONFIG; default: built-in defaults)")
    s.add_argument("--listen", help="HOST:PORT (env FOGD_LISTEN; default 127.0.0.1:8000)")
    s.add_argument("--db", help="SQLite file (env FOGD_DB)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("ingest", parents=[common], help="send one reading (or --file with JSON)")
    s.add_argument("node", nargs="?", help="node name, e.g. fog-1")
    s.add_argument("--temperature", type=float, help="°C")
    s.add_argument("--humidity", type=float, help="%%RH")
    s.add_argument("--power", type=float, help="W")
    s.add_argument("--seq", type=int, help="per-node sequence number (for de-duplication)")
    s.add_argument("--timestamp", help="ISO-8601 UTC (default: now)")
    s.add_argument("--role", choices=["fog", "cloud"], help="role, if this registers the node")
    s.add_argument("--extra", action="append", default=[], metavar="NAME=NUMBER", help="extra metric (repeatable)")
    s.add_argument("--file", help="post this JSON file (a reading or an array); - for stdin")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("data", parents=[common], help="a node's readings, newest first")
    s.add_argument("node")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--since", help="ISO-8601 or epoch ms")
    s.add_argument("--until", help="ISO-8601 or epoch ms")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("live", parents=[common], help="the latest reading of every node")
    s.set_defaults(func=cmd_live)

    s = sub.add_parser("plugins", parents=[common], help="loaded plugins and the hooks they implement")
    s.add_argument("--config", help="path to fogd.toml (for plugins.disabled)")
    s.set_defaults(func=cmd_plugins)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from fogd.errors import ConfigError

    args = build_parser().parse_args(argv)
    if hasattr(args, "url"):
        args.client = Client(args.url, args.timeout)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"fogd: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"fogd: config error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"fogd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
