#!/bin/bash
# final.sh: two default variants (L1 regression R, bins + L1 C9), NoGAN pretraining then a GAN stage, side by side on one GPU; outputs into $OUT.
source train/device/env.sh
mkdir -p runs/gpu
python3 train/device/unpack.py gpu/train128 runs/train128_full 2>&1 | tail -1
common="--preset default --dataset_dir runs/train128_full --preload_data --resolution 112 --train_batch_size 64 --gen_base_channels 48
 --num_epochs 100000 --mixed_precision bf16 --checkpointing_steps 2000 --checkpoints_total_limit 1 --validation_steps 2000
 --logging_steps 100 --max_eval_samples 512 --report_to none"
source train/device/stage.sh
stage() {  # stage OUTDIR SECONDS flags...: train, save generator/, send it to $OUT
  out=$1; secs=$2; shift 2
  train_for $secs $out $common "$@" > $out.log 2>&1
  tar cf $OUT/$(basename $out).tar -C $out generator history.json loss_curves.png
}
variant() {
  n=$1; shift
  stage runs/gpu/$n-pre 250 --adv_weight 0 "$@"
  stage runs/gpu/$n-gan 175 --init_generator runs/gpu/$n-pre/generator "$@"
}
variant R --architecture unet &
variant C9 --architecture unet_bins --class_weight 1 --pixel_weight 10 --rebalance_lambda 0.9 &
wait
tar czf $OUT/logs.tgz runs/gpu/*.log
grep -h "epoch [0-9]*:\|Error\|error" runs/gpu/*.log | tail -12
ls -la $OUT
