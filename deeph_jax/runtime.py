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
