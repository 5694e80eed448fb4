"""The pure training step: masked block losses, optax update, EMA; jitted over a device mesh.

Data parallelism is ``jax.jit`` with a 1-D device ``Mesh`` (axis ``"data"``): the batch is
stacked on a leading device axis and sharded along it, parameters are replicated, and XLA
inserts the gradient all-reduce. This is the modern equivalent of ``pmap`` and the same code
runs on one device, several local devices, or devices over several hosts (``jax.distributed``).
The loss is normalized by the global number of real block entries, not per device.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deeph_jax.model.irreps_blocks import BlockLayout, entry_mask
from deeph_jax.train.config import TrainConfig


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    ema: Any  # EMA of params (equal to params when EMA is off)
    step: jnp.ndarray  # int32 scalar


def make_schedule(tc: TrainConfig | dict):
    """Learning rate per step: linear warmup to ``tc.lr``, then cosine decay or constant."""
    tc = TrainConfig.coerce(tc)
    warm = max(tc.warmup_steps, 1)
    if tc.schedule == "constant":
        return optax.join_schedules([optax.linear_schedule(0.0, tc.lr, warm), optax.constant_schedule(tc.lr)],
                                    [tc.warmup_steps])
    return optax.warmup_cosine_decay_schedule(0.0, tc.lr, warm, max(tc.steps, tc.warmup_steps + 1),
                                              end_value=tc.lr * tc.final_lr_fraction)


def make_optimizer(tc: TrainConfig | dict) -> optax.GradientTransformation:
    tc = TrainConfig.coerce(tc)
    parts = []
    if tc.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(tc.grad_clip))
    parts.append(optax.adamw(make_schedule(tc), weight_decay=tc.weight_decay))
    return optax.chain(*parts)


def block_errors(model, layout: BlockLayout, params, batch):
    """Sums over one (unstacked) batch: squared and absolute errors of H (eV) and S on real entries.

    Returns dict of scalars: sse_h, sse_s, sae_h, sae_s, count.
    """
    h, s = model.apply(params, batch)
    species = batch.species
    mask = entry_mask(layout, species[batch.senders], species[batch.receivers])
    mask = mask & batch.block_mask[:, None, None] & batch.edge_mask[:, None, None]
    m = mask.astype(h.dtype)
    dh, ds = (h - batch.h_blocks) * m, (s - batch.s_blocks) * m
    return {
        "sse_h": jnp.sum(dh * dh), "sse_s": jnp.sum(ds * ds),
        "sae_h": jnp.sum(jnp.abs(dh)), "sae_s": jnp.sum(jnp.abs(ds)),
        "count": jnp.sum(m),
    }


def stacked_errors(model, layout, params, stacked):
    """Sum of :func:`block_errors` over the leading device axis of a stacked batch."""
    per_device = jax.vmap(lambda b: block_errors(model, layout, params, b))(stacked)
    return jax.tree_util.tree_map(jnp.sum, per_device)


def make_train_step(model, layout: BlockLayout, tx: optax.GradientTransformation, tc: TrainConfig | dict, mesh=None):
    """``train_step(state, stacked_batch) -> (state, metrics)``, jitted (sharded when ``mesh``)."""
    tc = TrainConfig.coerce(tc)
    w_s = tc.overlap_weight
    decay = tc.ema_decay

    def loss_fn(params, stacked):
        e = stacked_errors(model, layout, params, stacked)
        count = jnp.maximum(e["count"], 1.0)
        loss = (e["sse_h"] + w_s * e["sse_s"]) / count
        return loss, e

    def train_step(state: TrainState, stacked):
        (loss, e), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, stacked)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if decay:
            # Bias-corrected warm start: early on the EMA follows the parameters closely.
            d = jnp.minimum(float(decay), (1.0 + state.step) / (10.0 + state.step))
            ema = jax.tree_util.tree_map(lambda a, p: d * a + (1 - d) * p, state.ema, params)
        else:
            ema = params
        count = jnp.maximum(e["count"], 1.0)
        metrics = {"loss": loss, "mae_h": e["sae_h"] / count, "mae_s": e["sae_s"] / count,
                   "grad_norm": optax.global_norm(grads)}
        return TrainState(params, opt_state, ema, state.step + 1), metrics

    if mesh is None:
        return jax.jit(train_step, donate_argnums=(0,))
    from jax.sharding import NamedSharding, PartitionSpec

    replicated = NamedSharding(mesh, PartitionSpec())
    data = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(train_step, in_shardings=(replicated, data), out_shardings=(replicated, replicated),
                   donate_argnums=(0,))


def make_predict(model):
    """Jitted ``predict(params, batch) -> (h_blocks, s_blocks)`` for one unstacked batch."""
    return jax.jit(model.apply)


def init_state(model, tx, rng, example_batch) -> TrainState:
    params = model.init(rng, example_batch)
    ema = jax.tree_util.tree_map(jnp.array, params)  # a copy: params and ema are donated separately
    return TrainState(params, tx.init(params), ema, jnp.zeros((), jnp.int32))


def to_device_batch(stacked, mesh=None):
    """Put a stacked numpy batch on the devices: sharded along axis 0 over ``mesh`` (all hosts)."""
    if mesh is None:
        return jax.tree_util.tree_map(jnp.asarray, stacked)
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = NamedSharding(mesh, PartitionSpec("data"))
    if jax.process_count() == 1:
        return jax.device_put(stacked, sharding)
    return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), stacked)
