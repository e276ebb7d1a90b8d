# Sourced by final.sh and paper.sh.
# train_for SECONDS OUTPUT_DIR FLAGS...: train.py for at most SECONDS (SIGTERM writes a checkpoint),
# then save generator/ at the step reached (the same flags, resumed, with --max_train_steps at that step).
train_for() {
  local secs=$1 out=$2 step
  shift 2
  timeout -s TERM "$secs" python3 train/train.py --output_dir "$out" "$@"
  step=$(ls -d "$out"/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -1)
  python3 train/train.py --output_dir "$out" "$@" --resume_from_checkpoint latest --max_train_steps "$step"
}
