#!/usr/bin/env bash
# The demo, from a fresh clone: set up the environment, synthesise the sample data if absent, train the tiny
# configuration on the VoxCeleb2-style sample, prepare the AV-Deepfake1M-style sample from its videos, and test on
# the DFDC-style, FakeAVCeleb-style and AV-Deepfake1M-style samples in one cross-dataset table, clean and under two
# perturbations (JPEG quality 30, voice noise at 10 dB SNR).
#
#   bash scripts/demo.sh                 # NAME=demo; checkpoints/demo, results/demo
#
# From a fresh clone on a 2-core CPU it took 6.5 minutes (2026-12-04), about 5 of them training.
# The training recipe is the default one; only the model size (the tiny configuration) and the number of epochs are
# the demo's own, plus logging choices.
# The released recipe (--recipe released) does not learn at this size: see docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt
NAME="${NAME:-demo}"
TINY=(--load_size 64 --crop_size 64 --width_mult 0.25 --dim 128 --depth 2 --heads 4 --mlp_dim 256 --emb_dim 128)

echo "== sample data (scripts/make_sample_data.py)"
"$PY" -m scripts.make_sample_data --out Dataset

echo "== training '$NAME' on Dataset/Voxceleb2 (tiny configuration)"
"$PY" train_DF.py --dataroot Dataset/Voxceleb2 --dataset_mode Vox_image --model DFD --name "$NAME" --no_flip \
    "${TINY[@]}" --n_epochs 6 --n_epochs_decay 2 --save_epoch_freq 2 \
    --print_freq 14 --save_latest_freq 0 --num_threads 1 --display_id 0 --overwrite
# (--overwrite: running the demo again starts it over; the previous demo run moves into checkpoints/$NAME/replaced-*)

echo "== preparing Dataset/AV1M from the videos of Dataset/AV1M_raw (scripts/prep_av1m.py)"
"$PY" -m scripts.prep_av1m --src Dataset/AV1M_raw --out Dataset/AV1M --detector none --workers 2

echo "== testing on the three test sets: the cross-dataset table (scripts/evaluate.py)"
"$PY" -m scripts.evaluate --name "$NAME" --sets dfdc=Dataset/DFDC,favc=Dataset/FakeAVCeleb,av1m=Dataset/AV1M \
    --perturb jpeg:30,snr:10 --num_threads 1
echo "== pages: checkpoints/$NAME/web/index.html (training), results/$NAME/table.html (the table),"
echo "   results/$NAME/index.html (every test)"
