#!/usr/bin/env bash
# The spinful sets of issue 17 (items 1-2), one after another on one core; resumable: rerun it and
# finished structure folders are skipped (run it in the background; see datasets/README.md, "Spinful data").
#   nohup nice -n 10 bash datasets/generate_spin.sh > spin.log 2>&1 &
# Molecules first (minutes to an hour), then the ribbons (many hours). A failed step (e.g. one SCF left
# out) does not stop the queue: rerun the script to retry what is missing.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
G="python3 -m deeph_jax.dft.commands generate"
M="$G molecules --threads 1 --no-progress"
# SOC: two-component X2C GKS, PBE / def2-SVP, 9 halides cycled by index, rattle 0.06 A.
$M --name halides --n 630 --seed 0 --out datasets/halides-soc-pbe-def2svp
$M --name halides --n 108 --seed 1 --out datasets/halides-soc-pbe-def2svp-test
# Collinear: UKS, PBE / def2-SVP, 8 radicals cycled by index, rattle 0.06 A.
$M --name radicals --n 400 --seed 0 --out datasets/radicals-uks-pbe-def2svp
$M --name radicals --n 80 --seed 1 --out datasets/radicals-uks-pbe-def2svp-test
# Magnetic zigzag graphene nanoribbons: KUKS, PBE / gth-szv / gth-pbe, multigrid, SCF mesh 8x1x1, dense 9x1x1,
# cutoff 10 A, rattle 0.05 A, the first structure of each set unrattled. AFM sets with 0.1 eV smearing (the AFM
# state is gapped; measured on 2-ZGNR: edge moments +-0.26 muB). The FM guess on 2-ZGNR with 0.1 eV smearing
# converged to the non-magnetic state (edge moments 3e-5 muB), so the FM sets use 0.02 eV smearing in their own
# folders (not yet measured: check magnetic_state in the first info.json of each FM set).
R="$G crystal --name zgnr --threads 1 --no-progress"
$R --width 2 --magnetic afm --pristine 1 --n 16 --seed 0 --out datasets/zgnr-szv/train-w2-afm
$R --width 3 --magnetic afm --pristine 1 --n 12 --seed 1 --out datasets/zgnr-szv/train-w3-afm
$R --width 4 --magnetic afm --pristine 1 --n 10 --seed 2 --out datasets/zgnr-szv/train-w4-afm
$R --width 3 --magnetic fm --smearing 0.02 --pristine 1 --n 12 --seed 11 --out datasets/zgnr-szv/train-w3-fm
$R --width 4 --magnetic fm --smearing 0.02 --pristine 1 --n 10 --seed 12 --out datasets/zgnr-szv/train-w4-fm
$R --width 6 --magnetic afm --n 2 --seed 1000 --out datasets/zgnr-szv/test-w6-afm
$R --width 6 --magnetic fm --smearing 0.02 --n 1 --seed 1002 --out datasets/zgnr-szv/test-w6-fm
$R --width 8 --magnetic afm --n 1 --seed 1001 --out datasets/zgnr-szv/test-w8-afm
