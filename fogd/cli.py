"""The ``fogd`` command: ``serve`` runs the daemon; the other subcommands talk to it.

Client subcommands find the daemon with ``--url`` or ``FOGD_URL`` (default
``http://127.0.0.1:8000``), print human tables, or JSON with ``--json``, and exit
non-zero with one clear line when the daemon is unreachable or says no.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator, Sequence

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

    def __init__(self, url: str, timeout: float, token: str = "", cafile: str = "") -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token
        self.context = None
        if cafile:
            import ssl
            self.context = ssl.create_default_context(cafile=cafile)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        with self._open(method, path, body, query) as resp:
            return json.loads(resp.read() or b"null")

    def stream(self, method: str, path: str, body: Any = None) -> Iterator[Any]:
        """Yield the JSON lines of an NDJSON reply as they arrive."""
        with self._open(method, path, body, None, accept="application/x-ndjson") as resp:
            if "ndjson" not in resp.headers.get("Content-Type", ""):
                yield json.loads(resp.read() or b"null")
                return
            for line in resp:
                if line.strip():
                    yield json.loads(line)

    @contextlib.contextmanager
    def _open(self, method: str, path: str, body: Any, query: dict[str, Any] | None,
              accept: str = "application/json") -> Iterator[Any]:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout, context=self.context)
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
        with resp:
            yield resp


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


NODE_COLUMNS = ["name", "role", "status", "liveness", "container_id", "ip", "host", "image", "last_reading"]


def cmd_create(args: argparse.Namespace) -> int:
    """Print each node as it starts (the daemon streams NDJSON), then the summary."""
    summary = _stream_nodes(args, "/create", {"fog": args.fog, "cloud": args.cloud})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{len(summary.get('created', []))} created, {len(summary.get('failed', []))} failed "
              f"with {summary.get('provisioner')} in {summary.get('elapsed_s', 0):.2f} s")
    return 0 if not summary.get("failed") else EXIT_ERROR


def _node_line(event: dict[str, Any]) -> str:
    action = event.get("action", "")
    mark = ("started" if not action or action in ("create", "replace") else
            {"remove": "removed", "upgrade": "upgraded", "rollback": "rolled back"}.get(action, action))
    mark = mark if event["ok"] else f"FAILED: {event.get('error', '')}"
    extra = " ".join(str(event[k]) for k in ("container_id", "host", "image") if event.get(k)) if event["ok"] else ""
    when = f"[{event['elapsed_s']:6.2f}s] " if "elapsed_s" in event else ""
    return f"{when}{action + ' ' if action else ''}{event['name']:<10} {mark} {extra}".rstrip()


def _stream_nodes(args: argparse.Namespace, path: str, body: Any) -> dict[str, Any]:
    """POST ``body`` to a streaming node route, print each node as it goes; the summary."""
    summary: dict[str, Any] = {}
    for event in args.client.stream("POST", path, body):
        if event.get("event") == "node":
            if not args.json:
                print(_node_line(event), flush=True)
        elif event.get("event") == "done":
            summary = {k: v for k, v in event.items() if k != "event"}
        else:  # a plain JSON reply
            summary = event
    return summary


def read_fleet_file(path: str) -> dict[str, Any]:
    import tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path}: not valid TOML: {exc}", 2) from None


PLAN_KEYS = ("create", "replace", "remove", "outdated")


def _plan_text(plan: dict[str, Any]) -> str:
    rows = [{"role": role, "desired": p["desired"], "running": p["running"], "image": p["image"],
             **{k: ",".join(p[k]) or "-" for k in PLAN_KEYS}} for role, p in plan.items() if isinstance(p, dict)]
    head = "in sync: nothing to do" if plan.get("in_sync") else "changes:"
    return head + "\n" + table(rows, ["role", "desired", "running", "image", *PLAN_KEYS])


def _fleet_result(args: argparse.Namespace, result: dict[str, Any]) -> int:
    lines = []
    if "revision" in result:
        lines.append(f"fleet revision {result['revision']}: created {len(result.get('created', []))}, "
                     f"replaced {len(result.get('replaced', []))}, removed {len(result.get('removed', []))}, "
                     f"failed {len(result.get('failed', []))} in {result.get('elapsed_s', 0):.2f} s")
    for failure in result.get("failed", []):
        lines.append(f"FAILED {failure['name']}: {failure.get('error', '')}")
    upgrade = result.get("upgrade")
    if upgrade is not None:
        lines.append(f"upgraded {len(upgrade['upgraded'])} nodes" if upgrade["ok"] else
                     f"UPGRADE ROLLED BACK: {upgrade['detail']}")
    if result.get("plan"):
        lines.append(_plan_text(result["plan"]))
    emit(args, result, "\n".join(lines))
    return 0 if result.get("ok", True) else EXIT_ERROR


def cmd_apply(args: argparse.Namespace) -> int:
    """Declare the fleet in FILE and make it so (nodes reported as they change)."""
    return _fleet_result(args, _stream_nodes(args, "/fleet", read_fleet_file(args.file)))


def cmd_plan(args: argparse.Namespace) -> int:
    body = read_fleet_file(args.file) if args.file else None
    result = args.client.request("POST", "/fleet/plan", body)
    emit(args, result, _plan_text(result))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    if args.fog is None and args.cloud is None:
        raise CliError("fogd scale: give --fog N and/or --cloud M", 2)
    return _fleet_result(args, _stream_nodes(args, "/fleet/scale", {"fog": args.fog, "cloud": args.cloud}))


def cmd_upgrade(args: argparse.Namespace) -> int:
    body = {"image": args.image, "role": args.role, "batch": args.batch, "timeout_s": args.wait}
    return _fleet_result(args, _stream_nodes(args, "/fleet/upgrade", {k: v for k, v in body.items() if v is not None}))


def cmd_fleet(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/fleet")
    if result["declared"] is None:
        emit(args, result, "no fleet declared (fogd apply fleet.toml, or fogd scale --fog N)")
        return 0
    lines = [f"fleet revision {result['revision']} ({result['provisioner']}), declared {result['updated']}",
             _plan_text(result["plan"])]
    if result.get("hosts"):
        lines.append("hosts: " + "; ".join(
            f"{host} " + ", ".join(f"{n} {role}" for role, n in sorted(roles.items()))
            for host, roles in result["hosts"].items()))
    last = result.get("last_reconcile")
    if last:
        lines.append(f"last reconciliation {last['at']}: " + (
            f"created {len(last.get('created', []))}, replaced {len(last.get('replaced', []))}, "
            f"removed {len(last.get('removed', []))}, failed {len(last.get('failed', []))}"
            if last.get("ok", True) or "error" not in last else f"FAILED: {last['error']}"))
    if result.get("upgrade"):
        u = result["upgrade"]
        lines.append(f"upgrade {u['state']}: {u['upgraded']}/{u['nodes']} nodes (started {u['started']})")
    emit(args, result, "\n".join(lines))
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/nodes")
    emit(args, result, table([{"node": k, "id": v} for k, v in result.items()], ["node", "id"])
         if result else "no nodes")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/nodes/status")
    emit(args, result, table(result, NODE_COLUMNS) if result else "no nodes")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    result = args.client.request("POST", "/cleanup", {"keep_history": args.keep_history})
    human = f"removed {len(result['removed'])} nodes ({result['provisioner']}); history {result['history']}"
    if result["removed"]:
        human += "\n" + table(result["removed"], ["name", "role", "id"])
    for failure in result["failed"]:
        human += f"\nFAILED {failure['name']}: {failure['error']}"
    emit(args, result, human)
    return 0 if not result["failed"] else EXIT_ERROR


ALERT_COLUMNS = ["id", "node", "rule", "severity", "state", "opened", "updated", "message"]


def cmd_analyze(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"node": args.node}
    if args.backtest:
        if not args.since:
            raise CliError("fogd analyze --backtest needs --since (ISO-8601 or epoch ms)", 2)
        query.update(backtest="1", since=args.since, until=args.until, step=args.step)
    result = args.client.request("POST", "/analyze", query=query)
    lines = []
    if args.backtest:
        lines.append(f"backtest {result['since']} .. {result['until']}, every {result['step_ms'] / 1000:g} s, "
                     f"rules: {', '.join(result['rules'])}")
        for node in result["nodes"].values():
            lines.append(f"{node['node']}: {node['readings']} readings, {node['opened']} alerts would have opened")
            lines += [f"  {e['at']}  {e['rule']:<22} {e['change']:<9} {e['severity'] or '':<8} {e['message'] or ''}"
                      for e in node["fired"]]
    else:
        lines.append(f"analyzed {result['analyzed']} nodes in {result['elapsed_ms']} ms "
                     f"with {', '.join(result['rules'])}")
        for node in result["nodes"].values():
            for f in node["findings"]:
                lines.append(f"  {f['severity'].upper():<8} {f['message']}")
            for a in node["alerts"]:
                lines.append(f"  alert {a.get('id', '?')} {a['rule']} {a['change']}")
        if len(lines) == 1:
            lines.append("  no findings")
    for e in result["errors"]:
        lines.append(f"  RULE FAILED {e['rule']}: {e['error']}")
    emit(args, result, "\n".join(lines))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/alerts", query={"state": args.state, "node": args.node,
                                                          "severity": args.severity, "limit": args.limit})
    emit(args, result, table(result, ALERT_COLUMNS) if result else f"no {args.state} alerts")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    result = args.client.request("POST", f"/alerts/{args.id}/ack")
    emit(args, result, f"alert {result['id']} ({result['node']} {result['rule']}) acknowledged")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    result = args.client.request("POST", "/transfer", {"source": args.source, "destination": args.destination})
    emit(args, result, f"copied {result['source']}'s latest reading ({result['copied']['timestamp']}) "
                       f"into {result['destination']}\n" + table([result["stored"]], READING_COLUMNS))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import webbrowser

    result = args.client.request("GET", "/dashboard/start")
    url = result["dashboard_url"]
    opened = False if args.no_open else webbrowser.open(url)
    emit(args, {**result, "opened": opened}, f"Fog Console: {url}" + ("" if opened else " (open it in a browser)"))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Tokens are managed on the database file itself (like a local superuser), so the
    first operator token can be made before anyone can call the API."""
    import asyncio

    from fogd.auth import digest, new_token
    from fogd.config import load_config
    from fogd.http.tokens import check_token_request
    from fogd.model import iso_ms, now_ms
    from fogd.store import Store

    env = dict(os.environ)
    if args.db:
        env["FOGD_DB"] = args.db
    config = load_config(args.config or env.get("FOGD_CONFIG"), env)

    async def run() -> tuple[Any, str]:
        store = await Store.open(config.store.resolved_path(), config.store.synchronous)
        try:
            if args.action == "create":
                if not args.name or not args.role:
                    raise CliError("fogd token create needs --name and --role", 2)
                check_token_request(args.name, args.role, args.node)
                token = new_token()
                await store.save_token(args.name, args.role, args.node, digest(token), now_ms())
                await store.add_audit((now_ms(), "cli:local", None, "CLI", "token create",
                                       json.dumps({"name": args.name, "role": args.role, "node": args.node}),
                                       0, "ok"))
                out = {"name": args.name, "role": args.role, "node": args.node, "token": token}
                return out, (f"{token}\n(token {args.name!r}, role {args.role}; shown once, fogd keeps only its "
                             "hash)")
            if args.action == "revoke":
                if not args.name:
                    raise CliError("fogd token revoke needs NAME", 2)
                if not await store.revoke_token(args.name, now_ms()):
                    raise CliError(f"no live token named {args.name!r}")
                await store.add_audit((now_ms(), "cli:local", None, "CLI", "token revoke",
                                       json.dumps({"name": args.name}), 0, "ok"))
                return {"name": args.name, "revoked": True}, f"revoked {args.name!r} (effective within 5 s)"
            rows = [{"name": n, "role": r, "node": node, "created": iso_ms(c), "revoked": iso_ms(rv) if rv else None}
                    for n, r, node, c, rv in await store.tokens()]
            return rows, table(rows, ["name", "role", "node", "created", "revoked"]) if rows else "no tokens"
        finally:
            await store.close()

    from fogd.errors import FogdError
    try:
        data, human = asyncio.run(run())
    except FogdError as exc:
        raise CliError(f"{exc.kind}: {exc.detail}") from None
    emit(args, data, human)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    result = args.client.request("GET", "/audit", query={"since": args.since, "actor": args.actor, "limit": args.limit})
    rows = [{**r, "params": json.dumps(r["params"])[:60]} for r in result]
    emit(args, result, table(rows, ["timestamp", "actor", "role", "method", "path", "status", "outcome", "params"])
         if result else "no audit entries")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("FOGD_URL", DEFAULT_URL),
                        help="fogd's base URL (env FOGD_URL; default %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for fogd")
    common.add_argument("--token", default=os.environ.get("FOGD_TOKEN", ""),
                        help="bearer token when fogd's auth is on (env FOGD_TOKEN)")
    common.add_argument("--cafile", default=os.environ.get("FOGD_CA_FILE", ""),
                        help="CA file to verify fogd's HTTPS certificate (env FOGD_CA_FILE)")

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

    s = sub.add_parser("create", parents=[common], help="start fog and cloud nodes")
    s.add_argument("--fog", type=int, default=0, help="fog nodes to add")
    s.add_argument("--cloud", type=int, default=0, help="cloud nodes to add")
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("apply", parents=[common], help="declare the fleet in a TOML file and make it so")
    s.add_argument("file", help="fleet.toml: image, [fog] and [cloud] with count, image, placement, ...")
    s.set_defaults(func=cmd_apply, timeout=3600.0)

    s = sub.add_parser("plan", parents=[common], help="what applying FILE would change (changes nothing)")
    s.add_argument("file", nargs="?", help="fleet.toml (default: the declared fleet against what runs)")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("scale", parents=[common], help="change the declared node counts")
    s.add_argument("--fog", type=int, help="fog nodes wanted")
    s.add_argument("--cloud", type=int, help="cloud nodes wanted")
    s.set_defaults(func=cmd_scale, timeout=3600.0)

    s = sub.add_parser("upgrade", parents=[common],
                       help="roll a new agent image through the fleet, a few nodes at a time")
    s.add_argument("--image", required=True, help="the new node image (e.g. fogd-node:2)")
    s.add_argument("--role", choices=["fog", "cloud"], help="only this role")
    s.add_argument("--batch", type=int, help="nodes at a time (default fleet.upgrade_batch)")
    s.add_argument("--wait", type=float,
                   help="seconds an upgraded node has to report before everything rolls back "
                        "(default fleet.upgrade_timeout)")
    s.set_defaults(func=cmd_upgrade, timeout=3600.0)

    s = sub.add_parser("fleet", parents=[common], help="the declared fleet, its plan and last reconciliation")
    s.set_defaults(func=cmd_fleet)

    s = sub.add_parser("nodes", parents=[common], help="node name -> container (or process) id")
    s.set_defaults(func=cmd_nodes)

    s = sub.add_parser("status", parents=[common], help="every node: role, status, liveness, ip, image")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("cleanup", parents=[common], help="remove this fogd's nodes (and their history)")
    s.add_argument("--keep-history", action="store_true", help="keep the nodes' readings")
    s.set_defaults(func=cmd_cleanup)

    s = sub.add_parser("analyze", parents=[common], help="run the analysis rules now (or a backtest)")
    s.add_argument("--node", help="only this node (default: every fog node)")
    s.add_argument("--backtest", action="store_true", help="replay stored history; writes nothing")
    s.add_argument("--since", help="backtest start (ISO-8601 or epoch ms)")
    s.add_argument("--until", help="backtest end (default: now)")
    s.add_argument("--step", type=int, help="seconds between backtest evaluations (default: analysis.interval)")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("alerts", parents=[common], help="alerts (live by default)")
    s.add_argument("--state", default="live", choices=["live", "open", "acknowledged", "cleared", "all"])
    s.add_argument("--node")
    s.add_argument("--severity", choices=["warning", "critical"])
    s.add_argument("--limit", type=int, default=100)
    s.set_defaults(func=cmd_alerts)

    s = sub.add_parser("ack", parents=[common], help="acknowledge an alert")
    s.add_argument("id", type=int)
    s.set_defaults(func=cmd_ack)

    s = sub.add_parser("transfer", parents=[common], help="copy SRC's latest metrics into DST")
    s.add_argument("source")
    s.add_argument("destination")
    s.set_defaults(func=cmd_transfer)

    s = sub.add_parser("dashboard", parents=[common], help="open the Grafana Fog Console in a browser")
    s.add_argument("--no-open", action="store_true", help="only print the URL")
    s.set_defaults(func=cmd_dashboard)

    s = sub.add_parser("token", parents=[common], help="create, list or revoke API tokens (on the database)")
    s.add_argument("action", choices=["create", "list", "revoke"])
    s.add_argument("name", nargs="?", help="token name (revoke)")
    s.add_argument("--name", dest="name_opt", help="token name (create)")
    s.add_argument("--role", choices=["operator", "analyst", "viewer", "agent"])
    s.add_argument("--node", help="the node an agent token may write")
    s.add_argument("--config", help="path to fogd.toml (to find the database)")
    s.add_argument("--db", help="SQLite file (env FOGD_DB)")
    s.set_defaults(func=cmd_token)

    s = sub.add_parser("audit", parents=[common], help="who did what (operators)")
    s.add_argument("--since", help="ISO-8601 or epoch ms")
    s.add_argument("--actor", help="token name")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("plugins", parents=[common], help="loaded plugins and the hooks they implement")
    s.add_argument("--config", help="path to fogd.toml (for plugins.disabled)")
    s.set_defaults(func=cmd_plugins)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from fogd.errors import ConfigError

    args = build_parser().parse_args(argv)
    if getattr(args, "name_opt", None):
        args.name = args.name_opt
    if hasattr(args, "url"):
        args.client = Client(args.url, args.timeout, getattr(args, "token", ""), getattr(args, "cafile", ""))
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
