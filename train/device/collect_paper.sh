#!/bin/bash
# collect_paper.sh: end every call of a long paper run with this, so the machine's return loses nothing:
# the newest checkpoint's generator weights (8.9 MB) and history go into $OUT.
latest=$(ls -d runs/gpu/paper/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | sort -n | tail -1)
[ -n "$latest" ] && tar cf $OUT/paper-checkpoint-$latest.tar -C runs/gpu/paper/checkpoint-$latest model.safetensors history.json
tail -c 300 runs/gpu/paper.log 2>/dev/null
