"""Subprocess worker for the data-parallel, multi-host and resume tests.

    python steps_worker.py CONFIG_JSON RUN_DIR OUT_NPZ [N_DEVICES]

Trains per the config (plain dict as JSON) and saves this process's copy of the final
parameters as OUT_NPZ.<process index>.npz.
"""

import json
import sys

import jax
import numpy as np

from deeph_jax.train.loop import Trainer


def main():
    config_path, run_dir, out = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else None
    config = json.loads(open(config_path).read())
    trainer = Trainer(config, run_dir, devices=jax.devices()[:n] if n else None)
    trainer.run()
    leaves = jax.tree_util.tree_leaves_with_path(trainer.final_state.params)
    arrays = {jax.tree_util.keystr(k): np.asarray(v.addressable_data(0)) for k, v in leaves}
    np.savez(f"{out}.{jax.process_index()}.npz", **arrays)
    print(f"devices {len(trainer.mesh.devices.ravel())} processes {jax.process_count()} done")


if __name__ == "__main__":
    main()
