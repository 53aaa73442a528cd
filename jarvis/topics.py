"""Kafka topic names: the pipeline's contract between roles."""

INGRESS = "jarvis.ops.ingress"  # signed batches from producers, before verification
OPS = "jarvis.ops"  # verified batches, stamped with dots; mirrored between regions
REJECTED = "jarvis.ops.rejected"  # every rejected operation or message, with its reasons
TASKS = "jarvis.tasks"  # agent tasks as submitted, before routing
TASKS_DEAD = "jarvis.tasks.dead"  # tasks that failed every attempt, with their error
AGENTS = "jarvis.agents"  # compacted: live agent workers, their capabilities and pool
TASK_POOL_PREFIX = "jarvis.tasks.pool."  # routed tasks, one topic per worker capability set

MIRRORED_OPS_PATTERN = r"^([A-Za-z0-9_-]+\.)?jarvis\.ops$"  # local and <region>.jarvis.ops


def mirrored(region: str, topic: str = OPS) -> str:
    """Name MirrorMaker 2's DefaultReplicationPolicy gives `topic` mirrored from `region`."""
    return f"{region}.{topic}"
