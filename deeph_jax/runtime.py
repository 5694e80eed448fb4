"""Process-level JAX settings, applied by the entry points (never at import)."""

from __future__ import annotations

import os
from pathlib import Path


def enable_compilation_cache(path: str | Path | None = None) -> Path:
    """Keep XLA executables on disk, so a second run skips the 1-2 minute compiles of the model.

    ``JAX_COMPILATION_CACHE_DIR`` wins when set; else ``path``; else ``~/.cache/deeph-jax/xla``.
    """
    import jax

    chosen = Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or path or Path.home() / ".cache" / "deeph-jax" / "xla")
    chosen.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(chosen))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return chosen


def init_distributed(dc: dict | None = None) -> bool:
    """``jax.distributed.initialize`` from a config's ``distributed`` section or DEEPH_COORDINATOR /
    DEEPH_NUM_PROCESSES / DEEPH_PROCESS_ID; returns whether this is a multi-process run (no-op otherwise)."""
    import jax

    dc = dc or {}
    addr = dc.get("coordinator_address") or os.environ.get("DEEPH_COORDINATOR")
    if not addr:
        return False
    n = int(dc.get("num_processes") or os.environ["DEEPH_NUM_PROCESSES"])
    pid = int(dc.get("process_id") if dc.get("process_id") is not None else os.environ["DEEPH_PROCESS_ID"])
    # CPU hosts need a collectives implementation for cross-process all-gather (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=addr, num_processes=n, process_id=pid)
    return True
