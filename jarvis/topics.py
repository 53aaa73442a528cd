"""Kafka topic names: the pipeline's contract between roles."""

INGRESS = "jarvis.ops.ingress"  # signed batches from producers, before verification
OPS = "jarvis.ops"  # verified batches, stamped with dots; mirrored between regions
SEEN = "jarvis.ops.seen"  # batches accepted by this region's verifiers (re-send protection); mirrored
REJECTED = "jarvis.ops.rejected"  # every rejected operation or message, with its reasons
TASKS = "jarvis.tasks"  # agent tasks as submitted, before routing
TASKS_DEAD = "jarvis.tasks.dead"  # tasks that failed every attempt, with their error
AGENTS = "jarvis.agents"  # compacted: live agent workers, their capabilities and pool
TASK_POOL_PREFIX = "jarvis.tasks.pool."  # routed tasks, one topic per worker capability set

# The largest record batch a broker takes (its message.max.bytes; jarvis/stack/kafka.py sets it).
# Producers keep a request a little under it, for the request's own framing.
BROKER_MESSAGE_MAX_BYTES = 8 * 1024 * 1024
PRODUCER_REQUEST_MAX_BYTES = BROKER_MESSAGE_MAX_BYTES - 350_000

# jarvis.ops.seen only has to cover the replay window (a day in the default pipelines): what is older
# fails the timestamp check anyway. A verifier reads the whole topic when it starts.
SEEN_RETENTION_MS = 2 * 24 * 3600 * 1000

MIRRORED_OPS_PATTERN = r"^([A-Za-z0-9_-]+\.)?jarvis\.ops$"  # local and <region>.jarvis.ops


def mirrored(region: str, topic: str = OPS) -> str:
    """Name MirrorMaker 2's DefaultReplicationPolicy gives `topic` mirrored from `region`."""
    return f"{region}.{topic}"
