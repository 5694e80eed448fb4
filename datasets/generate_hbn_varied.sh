#!/usr/bin/env bash
# The varied hBN sets of issue 15, one after another on one core; resumable: rerun it and finished
# structure folders are skipped; the test sets go first, since they are the acceptance check (run it in the background: it takes several sessions of CPU time).
#   nohup bash datasets/generate_hbn_varied.sh > hbn-varied.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
G="python3 -m deeph_jax.dft.commands generate crystal --name hbn --threads 1 --no-progress"
V="--rattle 0 --rattle-max 0.15 --strain 0.02"
$G --supercell 3,3,1 $V --pristine 1 --n 30 --seed 1 --out datasets/hbn-szv/train-3x3
$G --supercell 4,4,1 $V --n 3 --seed 1000 --out datasets/hbn-szv/test-4x4
$G --supercell 6,6,1 $V --n 2 --seed 1001 --out datasets/hbn-szv/test-6x6
$G --supercell 4,4,1 $V --pristine 1 --n 24 --seed 2 --out datasets/hbn-szv/train-4x4
