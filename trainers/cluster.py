"""``TF_CONFIG`` checked before TensorFlow sees it, and what a lost worker looks like.

TensorFlow given a ``TF_CONFIG`` whose task is not in its cluster, or whose cluster names one
address twice, fails late and obscurely (or waits for a peer that can never come);
:func:`check_tf_config` says what is wrong in one line before any strategy is made.

When a worker of a ``MultiWorkerMirroredStrategy`` run vanishes (killed, preempted, its
machine lost), the others learn it from TensorFlow's coordination service: its heartbeats
stop, and after the heartbeat timeout (about 10 s here) the next collective fails with
``UnavailableError: ... The following tasks are unhealthy (stopped sending heartbeats)``.
:func:`lost_peer_message` turns that into the one line the trainer prints (exit code 1):
the run cannot continue with fewer workers; every worker is restarted with ``--resume``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from trainers.cli import UsageError

TASK_TYPES = ("chief", "worker", "ps", "evaluator")


def check_tf_config(raw: str | None = None) -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` (``raw``, default the environment's; ``{}`` when unset), checked.

    Raises:
        UsageError: invalid JSON, a cluster entry that is not a list of ``host:port``
            strings, an address named twice, or a task missing from the cluster.
    """
    raw = os.environ.get("TF_CONFIG", "") if raw is None else raw
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(f"TF_CONFIG is not valid JSON: {e}.") from None
    if not isinstance(config, dict):
        raise UsageError("TF_CONFIG must be a JSON object with 'cluster' and 'task'.")
    cluster = config.get("cluster") or {}
    if not isinstance(cluster, dict):
        raise UsageError("TF_CONFIG's 'cluster' must map task types to lists of host:port addresses.")
    seen: dict[str, str] = {}
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise UsageError(f"TF_CONFIG's cluster {kind!r} must be a list of 'host:port' strings, got {addresses!r}.")
        for i, address in enumerate(addresses):
            where = f"{kind} {i}"
            if address in seen:
                raise UsageError(
                    f"TF_CONFIG names {address} twice ({seen[address]} and {where}); "
                    "every task needs its own host:port."
                )
            seen[address] = where
    if not cluster:
        return config
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UsageError(
            'TF_CONFIG has a cluster but no task for this process: add "task": {"type": "worker", "index": N}.'
        )
    kind, index = task["type"], task["index"]
    members = cluster.get(kind)
    if not isinstance(index, int) or isinstance(index, bool) or not members or not 0 <= index < len(members):
        size = len(members) if isinstance(members, list) else 0
        raise UsageError(
            f"TF_CONFIG's task {kind} {index} is not in its cluster ({size} {kind} address(es)); "
            f"give this process an index from 0 to {max(size - 1, 0)} of a task type the cluster lists."
        )
    return config


def lost_peer_message(error: BaseException, *, model_dir: str | None, checkpoint: str | None) -> str:
    """One line for a collective that failed because a worker vanished."""
    text = str(error).strip().splitlines()
    unhealthy = next((line.strip() for line in text if line.strip().startswith("/job:")), "")
    who = f" ({unhealthy})" if unhealthy else ""
    said = re.sub(r"\{\{[^}]*\}\}\s*", "", text[0]).strip() if text else ""
    said = said if len(said) <= 160 else said[:157] + "..."
    saved = f"; the last checkpoint is {checkpoint}" if checkpoint else ""
    where = f" --model_dir {model_dir}" if model_dir else ""
    return (
        f"a worker of the cluster stopped{who}: {type(error).__name__}" + (f" ({said})" if said else "")
        + f"; the run cannot go on with fewer workers. Restart every worker with --resume{where}{saved}."
    )
