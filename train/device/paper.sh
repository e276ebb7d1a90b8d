#!/bin/bash
# paper.sh SECONDS: the paper preset, 1000 epochs (or until SECONDS), bf16 autocast, data held on the GPU.
common="--preset paper --dataset_dir gpu/paper120_full --preload_data --num_epochs 1000 --mixed_precision bf16
 --checkpointing_steps 4200 --checkpoints_total_limit 2 --validation_steps 420 --max_eval_samples 300 --logging_steps 42
 --report_to none --output_dir runs/gpu/paper"
timeout -s TERM $1 python3 train/train.py $common
if [ ! -d runs/gpu/paper/generator ]; then
  step=$(ls -d runs/gpu/paper/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -1)
  python3 train/train.py $common --resume_from_checkpoint latest --max_train_steps $step
fi
echo "paper done"
[ -n "$OUT" ] && tar cf $OUT/paper.tar -C runs/gpu/paper generator history.json loss_curves.png
