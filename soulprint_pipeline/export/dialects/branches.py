"""Following a branch of a conversation tree back from its leaf, safely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def walk_back(nodes: Mapping[str, Any], leaf: str, parent_key: str) -> list[tuple[str, Any]]:
    """The (id, node) pairs from the root down to ``leaf``, following ``parent_key`` links.

    Stops at a missing parent and at a cycle (a node met twice), so a damaged export yields
    the part of the branch that holds together instead of looping or failing.
    """
    path: list[tuple[str, Any]] = []
    seen: set[str] = set()
    node_id: Any = leaf
    while isinstance(node_id, str) and node_id in nodes and node_id not in seen:
        seen.add(node_id)
        node = nodes[node_id]
        if not callable(getattr(node, "get", None)):  # a JSON object, or a compacted node
            break
        path.append((node_id, node))
        node_id = node.get(parent_key)
    path.reverse()
    return path
