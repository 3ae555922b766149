"""SQLite persistence: the :class:`Store` (schema in ``migrations``, group commit in ``writer``)."""

from fogd.store.sqlite import Node, ReadingRow, Store, StoreFailed

__all__ = ["Node", "ReadingRow", "Store", "StoreFailed"]
