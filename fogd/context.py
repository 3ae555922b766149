"""What every route and background loop of one daemon can reach: ``request.app[FOGD]``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from fogd.analysis import Analyzer
from fogd.auth import TokenCache
from fogd.config import Config
from fogd.fleet import Fleet
from fogd.ingest import Ingestor
from fogd.live import LiveCache
from fogd.metrics import Metrics
from fogd.nodes import NodeManager
from fogd.plugins.host import PluginHost
from fogd.store import Store
from fogd.store.writer import GroupCommitWriter


@dataclass
class Fogd:
    """The parts of a running daemon; built by :func:`fogd.daemon.create_app`."""

    config: Config
    plugins: PluginHost
    metrics: Metrics
    store: Store
    writer: GroupCommitWriter
    live: LiveCache
    ingestor: Ingestor
    nodes: NodeManager
    fleet: Fleet
    analyzer: Analyzer
    tokens: TokenCache
    started: float = field(default_factory=time.time)


FOGD = web.AppKey("fogd", Fogd)
