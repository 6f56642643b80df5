#!/usr/bin/env bash
# The demo, from a fresh clone: set up the environment, synthesise the sample data if absent, train the tiny
# configuration on the VoxCeleb2-style sample, test on the DFDC-style and FakeAVCeleb-style samples.
#
#   bash scripts/demo.sh                 # NAME=demo; checkpoints/demo, results/demo
#
# On a 2-core CPU it takes about 5 to 7 minutes, most of it training. The paper's recipe (one anchor per step,
# margin 100, N(0, 0.02) initialisation) needs days on a GPU; to learn in minutes the demo takes its negatives
# from the batch (--negatives in_batch), initialises with kaiming and uses a margin of 10.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt
NAME="${NAME:-demo}"
TINY=(--load_size 64 --crop_size 64 --width_mult 0.25 --dim 128 --depth 2 --heads 4 --mlp_dim 256 --emb_dim 128)

echo "== sample data (scripts/make_sample_data.py)"
"$PY" -m scripts.make_sample_data --out Dataset

echo "== training '$NAME' on Dataset/Voxceleb2 (tiny configuration)"
"$PY" train_DF.py --dataroot Dataset/Voxceleb2 --dataset_mode Vox_image --model DFD --name "$NAME" --no_flip \
    "${TINY[@]}" --negatives in_batch --batch_size 32 --init_type kaiming --margin 10 \
    --n_epochs 10 --n_epochs_decay 5 --save_epoch_freq 5 --bn_recalib_batches 10 \
    --print_freq 27 --save_latest_freq 0 --num_threads 1 --display_id 0

echo "== testing on Dataset/DFDC"
"$PY" test_DF.py --dataroot Dataset/DFDC --dataset_mode DFDC --model DFD --name "$NAME" --num_threads 1
echo "== testing on Dataset/FakeAVCeleb"
"$PY" test_DF.py --dataroot Dataset/FakeAVCeleb --dataset_mode DFDC --model DFD --name "$NAME" --num_threads 1
echo "== pages: checkpoints/$NAME/web/index.html (training), results/$NAME/index.html (tests)"
