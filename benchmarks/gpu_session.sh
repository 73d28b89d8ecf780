#!/usr/bin/env bash
# One prepared GPU session (device tool) for the training-speed work: throughput table with the CUDA-graph
# check, then training quality of the Trainer, the eager step and the graphed step on real abstracts.
# Expects .device/minilm (MiniLM, fp16 copy; loaded as fp32) and .device/nicta (nicta-piboso text files);
# writes logs and JSON to $OUT. At most 590 s of timeouts (compile rows may be cut); run with timeout_s 600.
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
M=.device/minilm D=.device/nicta
quiet() { grep -vE "Warn|warn|Loading weights|LOAD REPORT|MISSING|UNEXPECTED|^Key|^---|^Notes|newly initialized|^- |^$"; }
# 1. throughput, BERT-base shape, each optimisation on top of the one before; compile rows last (skippable)
timeout 250 python3 benchmarks/train_throughput.py --shape bert-base --tokenizer $M --data $D/train.txt \
  --steps 200 --warmup 40 --check 30 --json $OUT/throughput.json --tmp /tmp 2>&1 | quiet | tee $OUT/throughput.log
# 2. quality, context none, MiniLM, lr 5e-5, 3 epochs, batch 32, seeds 1-3: Trainer vs eager vs graphs
for run in "120 --engine trainer" "80 --cuda-graphs false" "80 --cuda-graphs true"; do
  limit=${run%% *} engine=${run#* } name=$(echo "${run#* }" | tr -d ' -')
  timeout $limit python3 benchmarks/context_modes.py --model $M --data $D --modes none --seeds 1 2 3 --lr 5e-5 \
    $engine --json $OUT/quality_$name.json 2>&1 | quiet | tee -a $OUT/quality.log
done
# 3. the label job's worker loop (split, tokenize, forward; no Spark there), BERT-base shape, by batch size.
# Needs pysbd (pure Python): copied into .device/py beside the session's other files.
PYTHONPATH=.device/py${PYTHONPATH:+:$PYTHONPATH} timeout 60 python3 benchmarks/worker_loop.py --model $M \
  --data $D/test.txt 2>&1 | quiet | tee $OUT/worker_loop.log
