#!/usr/bin/env bash
# One prepared GPU session (device tool): context modes on real abstracts, then training throughput.
# Expects .device/minilm (MiniLM, fp16 copy) and .device/nicta (the nicta-piboso text files); writes to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
M=.device/minilm D=.device/nicta
ctx() { timeout "$1" python3 benchmarks/context_modes.py --model $M --data $D --seeds 1 2 3 "${@:2}" 2>&1 \
          | grep -vE "Loading weights|LOAD REPORT|MISSING|UNEXPECTED|^Key|^---|^Notes|newly initialized|^- |^$" ; }
ctx 150 --modes none abstract --lr 5e-5 --json $OUT/ctx_lr5e-5.json | tee $OUT/ctx.log
ctx 100 --modes none abstract --lr 2e-4 --json $OUT/ctx_lr2e-4.json | tee -a $OUT/ctx.log
timeout 240 python3 benchmarks/train_throughput.py --shape bert-base --tokenizer $M --data $D/train.txt \
  --steps 200 --warmup 40 --json $OUT/throughput.json --tmp /tmp 2>&1 | grep -vE "Warn|warn" | tee $OUT/throughput.log
