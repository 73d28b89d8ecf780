"""Helper for test_training: 36 optimizer steps of the project's step, dropout off; run alone or under
torchrun. Rank 0 writes the final parameters to argv[3]."""
import sys

import pyarrow.parquet as pq
import torch
from transformers import AutoModelForSequenceClassification

from pubmed_rct.params import shipped_train
from pubmed_rct.modeling.encoding import examples_from_table
from pubmed_rct.training.distributed import process_group
from pubmed_rct.training.loop import epoch_batches, make_optimizer, make_step

tokenized, model_dir, out = sys.argv[1:4]
examples = examples_from_table(pq.read_table(tokenized))
with process_group() as (rank, world_size):
    torch.manual_seed(0)  # the same head on 1 and 2 processes (DDP then broadcasts rank 0's)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.train()
    config = shipped_train(learning_rate=5e-3, batch_size=8, max_grad_norm=1.0)
    step = make_step(model, make_optimizer(model, config, torch.device("cpu")), None, config, "none", 0,
                     torch.device("cpu"), None, rank, world_size)
    for batch in epoch_batches([len(e["input_ids"]) for e in examples], 8, 42, 0, True)[:36]:
        step([examples[i] for i in batch])
    if rank == 0:
        torch.save(model.state_dict(), out)
