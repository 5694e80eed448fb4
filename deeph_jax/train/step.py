"""The pure training step: masked block losses (on-site and off-site H apart), optax update, EMA;
jitted over a device mesh.

Data parallelism is ``jax.jit`` with a 1-D device ``Mesh`` (axis ``"data"``): the batch is
stacked on a leading device axis and sharded along it, parameters are replicated, and XLA
inserts the gradient all-reduce. This is the modern equivalent of ``pmap`` and the same code
runs on one device, several local devices, or devices over several hosts (``jax.distributed``).
The loss is normalized by the global numbers of real block entries (on-site and off-site H
blocks apart, see :func:`weighted_loss`), not per device.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deeph_jax.model.irreps_blocks import BlockLayout, entry_mask
from deeph_jax.model.spin_blocks import spin_entry_mask
from deeph_jax.train.config import TrainConfig
from deeph_jax.train.eigen_loss import EigenSpec, eigen_errors


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


def _decayed(params):
    """Weight decay applies to every parameter but the heads' fixed radial scale tables (not trained)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not any(getattr(k, "key", None) == "log_radial_scale" for k in path), params)


def make_optimizer(tc: TrainConfig | dict) -> optax.GradientTransformation:
    tc = TrainConfig.coerce(tc)
    parts = []
    if tc.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(tc.grad_clip))
    parts.append(optax.adamw(make_schedule(tc), weight_decay=tc.weight_decay, mask=_decayed))
    return optax.chain(*parts)


def onsite_edges(batch):
    """(E,) bool: self edges (i, i, R = 0), the edges of on-site blocks (their vector is exactly 0)."""
    return (batch.senders == batch.receivers) & jnp.all(batch.vectors == 0, axis=-1)


def eigen_spec(tc: TrainConfig) -> EigenSpec | None:
    """The eigenvalue loss of ``tc``, or None when its weight is 0."""
    return EigenSpec(tc.eigen_max_atoms, tuple(tc.eigen_window_eV), tc.eigen_kpoints) if tc.eigen_weight else None


class ShellSpec(NamedTuple):
    """The shell-bias loss: distance bins (``bin_A`` wide, Angstrom) up to ``cutoff_A`` per element pair."""

    bin_A: float
    cutoff_A: float


def shell_bias_spec(tc: TrainConfig, cutoff_A: float) -> ShellSpec | None:
    return ShellSpec(float(tc.shell_bias_bin_A), float(cutoff_A)) if tc.shell_bias_weight else None


def shell_error_sums(dh, mh, batch, layout: BlockLayout, shells: ShellSpec):
    """Per (ordered element pair, distance bin, entry) of the off-site blocks: the sum of the H errors and
    their count, (n_groups, W, W) each (2W for spinful H). Group sums add over devices before squaring."""
    S = len(layout.elements)
    n_bins = int(np.ceil(shells.cutoff_A / shells.bin_A)) + 1
    lengths = jnp.sqrt(jnp.sum(batch.vectors * batch.vectors, axis=-1))
    bins = jnp.clip(jnp.floor(lengths / shells.bin_A).astype(jnp.int32), 0, n_bins - 1)
    pair = batch.species[batch.senders] * S + batch.species[batch.receivers]
    group = pair * n_bins + bins
    off = 1 - onsite_edges(batch)[:, None, None].astype(mh.dtype)
    n_groups = S * S * n_bins
    return (jax.ops.segment_sum(dh * off, group, n_groups), jax.ops.segment_sum(mh * off, group, n_groups))


def shell_bias_sse(group_sum, group_count):
    """sum over groups and entries of |sum of errors|^2 / count = count x |mean error|^2."""
    sq = group_sum.real * group_sum.real + (group_sum.imag * group_sum.imag if jnp.iscomplexobj(group_sum) else 0)
    return jnp.sum(sq / jnp.maximum(group_count, 1.0))


def block_errors(model, layout: BlockLayout, params, batch, eigen: EigenSpec | None = None,
                 shells: ShellSpec | None = None):
    """Sums over one (unstacked) batch: squared and absolute errors of H (eV) and S on real entries; with
    ``eigen`` also of the windowed eigenvalues (sse_eig, sae_eig, count_eig; :mod:`deeph_jax.train.eigen_loss`).

    Spinful H (``model.config.spin`` soc or collinear; (E, 2W, 2W) complex): an entry's squared error is
    |dH|^2 = dRe^2 + dIm^2 and its absolute error |dH|, over the spin quarters the model predicts
    (collinear: uu and dd only); ``count_h`` counts those complex entries.

    Returns dict of scalars: sse_h, sse_s, sae_h, sae_s, count (S entries = real orbital entries),
    count_h (H entries), and the H sums and entry counts of on-site and off-site blocks apart:
    sse_h_onsite, sae_h_onsite, count_onsite, sse_h_offsite, sae_h_offsite, count_offsite; with ``shells``
    also the arrays group_sum_h and group_count_h of :func:`shell_error_sums`.
    """
    h, s = model.apply(params, batch)
    species = batch.species
    mask = entry_mask(layout, species[batch.senders], species[batch.receivers])
    mask = mask & batch.block_mask[:, None, None] & batch.edge_mask[:, None, None]
    m = mask.astype(s.dtype)
    spin = model.config.spin
    mh = m if spin == "none" else spin_entry_mask(mask, spin).astype(s.dtype)
    on = onsite_edges(batch)[:, None, None].astype(s.dtype)
    dh, ds = (h - batch.h_blocks) * mh, (s - batch.s_blocks) * m
    sq_h = dh * dh if spin == "none" else dh.real * dh.real + dh.imag * dh.imag
    abs_h = jnp.abs(dh)
    extra = {}
    if eigen is not None:
        blocks = h * mh  # only the entries the basis has: padding would couple to the real orbitals
        extra = eigen_errors(blocks, batch, layout, eigen)
    if shells is not None:
        extra["group_sum_h"], extra["group_count_h"] = shell_error_sums(dh, mh, batch, layout, shells)
    return extra | {
        "sse_h": jnp.sum(sq_h), "sse_s": jnp.sum(ds * ds),
        "sae_h": jnp.sum(abs_h), "sae_s": jnp.sum(jnp.abs(ds)),
        "count": jnp.sum(m), "count_h": jnp.sum(mh),
        "sse_h_onsite": jnp.sum(sq_h * on), "sae_h_onsite": jnp.sum(abs_h * on), "count_onsite": jnp.sum(mh * on),
        "sse_h_offsite": jnp.sum(sq_h * (1 - on)), "sae_h_offsite": jnp.sum(abs_h * (1 - on)),
        "count_offsite": jnp.sum(mh * (1 - on)),
    }


def stacked_errors(model, layout, params, stacked, eigen: EigenSpec | None = None, shells: ShellSpec | None = None):
    """Sum of :func:`block_errors` over the leading device axis of a stacked batch (group arrays keep their
    shape: summed over devices only)."""
    per_device = jax.vmap(lambda b: block_errors(model, layout, params, b, eigen, shells))(stacked)
    return {k: jnp.sum(v, axis=0) if k.startswith("group_") else jnp.sum(v) for k, v in per_device.items()}


def _mean(total, count):
    return total / jnp.maximum(count, 1.0)


def weighted_loss(e: dict, tc: TrainConfig):
    """The loss from error sums (global over devices): each term is a mean over its own entries,

        onsite_weight * MSE(on-site H) + offsite_weight * MSE(off-site H) + overlap_weight * MSE(S)
        [+ eigen_weight * MSE(windowed eigenvalues)] [+ shell_bias_weight * (the shells' mean errors, squared
        and weighted by their counts, over the off-site entries)],

    in eV^2 for H (spinful: the mean of |dH|^2 = dRe^2 + dIm^2 per complex entry); S is left out (not
    differentiated) when its weight is 0.
    """
    loss = tc.onsite_weight * _mean(e["sse_h_onsite"], e["count_onsite"])
    loss = loss + tc.offsite_weight * _mean(e["sse_h_offsite"], e["count_offsite"])
    if tc.overlap_weight:
        loss = loss + tc.overlap_weight * _mean(e["sse_s"], e["count"])
    if tc.eigen_weight:
        loss = loss + tc.eigen_weight * _mean(e["sse_eig"], e["count_eig"])
    if tc.shell_bias_weight:
        loss = loss + tc.shell_bias_weight * _mean(shell_bias_sse(e["group_sum_h"], e["group_count_h"]),
                                                   e["count_offsite"])
    return loss


def make_train_step(model, layout: BlockLayout, tx: optax.GradientTransformation, tc: TrainConfig | dict, mesh=None,
                    compiler_options: dict | None = None):
    """``train_step(state, stacked_batch) -> (state, metrics)``, jitted (sharded when ``mesh``).

    Metrics: loss, mae_h (eV, all blocks), mae_h_onsite, mae_h_offsite, mae_s, grad_norm.
    ``compiler_options``: XLA options of the jit (e.g. ``network.FAST_COMPILE`` for short test runs).
    """
    tc = TrainConfig.coerce(tc)
    decay = tc.ema_decay
    eigen = eigen_spec(tc)
    shells = shell_bias_spec(tc, model.config.cutoff)

    def loss_fn(params, stacked):
        e = stacked_errors(model, layout, params, stacked, eigen, shells)
        return weighted_loss(e, tc), e

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
        metrics = {"loss": loss, "mae_h": _mean(e["sae_h"], e["count_h"]), "mae_s": _mean(e["sae_s"], e["count"]),
                   "mae_h_onsite": _mean(e["sae_h_onsite"], e["count_onsite"]),
                   "mae_h_offsite": _mean(e["sae_h_offsite"], e["count_offsite"]),
                   "grad_norm": optax.global_norm(grads)}
        if eigen is not None:
            metrics["mae_eig"] = _mean(e["sae_eig"], e["count_eig"])
        return TrainState(params, opt_state, ema, state.step + 1), metrics

    if mesh is None:
        return jax.jit(train_step, donate_argnums=(0,), compiler_options=compiler_options)
    from jax.sharding import NamedSharding, PartitionSpec

    replicated = NamedSharding(mesh, PartitionSpec())
    data = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(train_step, in_shardings=(replicated, data), out_shardings=(replicated, replicated),
                   donate_argnums=(0,), compiler_options=compiler_options)


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
