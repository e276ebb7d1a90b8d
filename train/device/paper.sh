#!/bin/bash
# paper.sh SECONDS (after `source train/device/env.sh`): the paper preset, 1000 epochs (or until SECONDS), bf16
# autocast, data held on the GPU. The unpacked pairs live under runs/, which a call's sync leaves in place.
common="--preset paper --dataset_dir runs/paper120_full --preload_data --num_epochs 1000 --mixed_precision bf16
 --checkpointing_steps 4200 --checkpoints_total_limit 2 --validation_steps 420 --max_eval_samples 300 --logging_steps 42
 --report_to none"
source train/device/stage.sh
mkdir -p runs/gpu
[ -d runs/paper120_full ] || python3 train/device/unpack.py gpu/paper120 runs/paper120_full
train_for $1 runs/gpu/paper $common
echo "paper done"
[ -n "$OUT" ] && tar cf $OUT/paper.tar -C runs/gpu/paper generator history.json loss_curves.png
