#!/usr/bin/env bash
# The GPU measurements still owed (one H100 or H200, paper size), in one run that fits a 10-minute call:
# speed rows first (each appended to docs/benchmarks.md), then a short paper-size learning check of the speed
# options against fp32. Nothing here changes a default: read the rows, then decide.
#
#   bash scripts/gpu_round.sh [OUT]     # OUT: where profiles, logs and run records go (default: gpu_round_out)
#
# Rows, in this order:
#   1. compute-only (random batches on the device) against fed by the loader, faces decoded in the loader
#      against on the device (--face_decode loader | device), bf16, batch 64;
#   2. channels-last on and off; torch.compile in its three modes (default, reduce-overhead: CUDA graphs of the
#      step's encoders, max-autotune: the compiler's fused BatchNorm/ReLU/pooling kernels and tuned matmuls);
#   3. larger per-GPU batches (128, 256), which the global-batch negatives make safe for the recipe;
#   4. a torch.profiler table of the compiled step (under OUT/profile);
#   5. scoring, fed and compute-only, batches of 256.
# Then the learning check: the same paper-size run (2,000 identities, 224-pixel faces) for a few epochs in fp32
# and in bf16 with compile; the validation AUCs of the two are written to OUT/auc.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_round_out}
mkdir -p "$OUT"
PY=${PY:-python3}
B="$PY -m scripts.benchmark --config paper --device cuda --amp bf16 --batch_size 64 --score_batch 256"
W=$(( $(nproc) > 15 ? 14 : $(nproc) - 1 ))
run() { echo "== $*"; timeout 300 "$@" 2>&1 | tail -3; }

run $B --what peak,train,train_loop --num_threads "$W" --face_decode loader --note 'fed vs compute-only, faces decoded in the loader'
run $B --what train_loop --num_threads "$W" --face_decode device --note 'faces decoded on the device'
run $B --what train --channels_last off --note 'channels-last off'
for mode in default reduce-overhead max-autotune; do
    run $B --what train --compile --compile_mode "$mode" --note "torch.compile mode $mode"
done
run $B --what train --compile --compile_mode reduce-overhead --profile "$OUT/profile" --note 'profile of the compiled step'
for batch in 128 256; do
    run $PY -m scripts.benchmark --config paper --device cuda --amp bf16 --batch_size "$batch" --what train \
        --compile --compile_mode reduce-overhead --note "batch $batch per GPU"
done
run $B --what score,score_loop --num_threads "$W" --note 'scoring, batches of 256'

# the learning check: does bf16 with compile learn as fp32 does?
D=/tmp/gpu_round_data
[ -d "$D/Voxceleb2" ] || $PY -m scripts.make_sample_data --out "$D" --sets vox --vox_ids 2000 --videos 2 \
    --image_size 224 --workers "$(nproc)" >/dev/null
common=(--dataroot "$D/Voxceleb2" --checkpoints_dir "$OUT/checkpoints" --no_flip --num_threads "$W" --display_id 0
        --n_epochs 6 --n_epochs_decay 0 --save_epoch_freq 100 --print_freq 50 --save_latest_freq 0)
timeout 150 $PY train_DF.py "${common[@]}" --name fp32 --amp none > "$OUT/fp32.log" 2>&1
timeout 150 $PY train_DF.py "${common[@]}" --name bf16_compile --amp bf16 --compile \
    --compile_mode reduce-overhead > "$OUT/bf16_compile.log" 2>&1
for name in fp32 bf16_compile; do   # the validation records of metrics.jsonl, one line each
    grep -h '"type": "val"' "$OUT/checkpoints/$name/metrics.jsonl" | sed "s/^/$name /"
done > "$OUT/auc.txt"
cp docs/benchmarks.md "$OUT/benchmarks.md"
cat "$OUT/auc.txt"
