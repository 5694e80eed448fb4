#!/usr/bin/env bash
# The bilayer graphene sets of issue 19, one after another on one core; resumable: rerun it and finished
# structure folders are skipped (run it in the background: it takes several sessions of CPU time).
#   nohup bash datasets/generate_bilayer.sh > bilayer.log 2>&1 &
# Training: 2x2 (16 atoms) and 3x3 (36 atoms) bilayers, the top layer shifted uniformly over the primitive cell,
# interlayer distance uniform in [3.2, 3.7] A, rattle sigma uniform in [0, 0.15] A, +-2 % in-plane strain;
# structure 00000 of each set unrattled. Test (never used for a design decision): the commensurate twisted cells,
# 21.79 degrees (m = 1, 28 atoms) and 13.17 degrees (m = 2, 76 atoms), ideal, at 3.35 A. All PBE / gth-szv /
# gth-pbe, multigrid, Fermi-Dirac 0.1 eV, cutoff 10 A, cell height 15 A (the defaults of these names).
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
G="python3 -m deeph_jax.dft.commands generate crystal --threads 1 --no-progress"
B="--name bilayer-graphene --rattle 0 --rattle-max 0.15 --strain 0.02 --pristine 1"
D=datasets/bilayer-graphene-szv
# The 28-atom test cell first (~30 min): the earliest bilayer models are checked on it (never tuned on it).
$G --name twisted-bilayer --twist-m 1 --n 1 --seed 1000 --out $D/test-twist-m1
$G $B --supercell 2,2,1 --n 40 --seed 0 --out $D/train-2x2
$G $B --supercell 3,3,1 --n 20 --seed 1 --out $D/train-3x3
# The mesh rule gives the 76-atom cell (10.7 A) a single SCF k-point; 2x2 keeps its k density at least the
# training cells' (a 2x2 bilayer's 3x3 mesh is 6x6 per primitive cell; 2x2 here is 8.7x8.7).
$G --name twisted-bilayer --twist-m 2 --n 1 --seed 1001 --kmesh 2,2,1 --out $D/test-twist-m2
