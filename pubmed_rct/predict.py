"""Label the sentences of raw abstracts with a trained model (the same fast path as evaluation)."""
from __future__ import annotations

from pathlib import Path

import torch

from .encoding import build_examples, special_ids, tokenize_sentences
from .model import cpu_has_bf16, load_trained, predict_proba
from .sentences import split_sentences


class Labeler:
    """A loaded model with its tokenizer, context mode and label names."""

    def __init__(self, model, tokenizer, mode: str, labels: list[str]):
        self.model, self.tokenizer, self.mode, self.labels = model, tokenizer, mode, labels
        config = model.config
        self.max_length = getattr(config, "sentence_max_length", 128)
        self.context_max_length = getattr(config, "context_max_length", 512)
        self.cls, self.sep = special_ids(tokenizer)
        self.model.eval()
        if not torch.cuda.is_available() and cpu_has_bf16():
            self.model.to(torch.bfloat16)  # inference only: cast the weights once, not on every call

    @classmethod
    def load(cls, path: str | Path) -> "Labeler":
        return cls(*load_trained(path))

    def label(self, texts: list[str], batch_size: int = 64) -> list[list[dict]]:
        """For each abstract, its sentences with label and probability (all labels' in `probabilities`)."""
        split = [split_sentences(t) for t in texts]
        flat = [s for sentences in split for s in sentences]
        abstracts, start = [], 0
        for sentences in split:
            abstracts.append(list(range(start, start + len(sentences))))
            start += len(sentences)
        examples = build_examples(tokenize_sentences(self.tokenizer, flat), abstracts, self.mode, self.max_length,
                                  self.context_max_length, self.cls, self.sep)
        examples = [dict(zip(examples, v)) for v in zip(*examples.values())]
        rows, probs = predict_proba(self.model, examples, self.mode, self.tokenizer.pad_token_id, batch_size)
        by_row = dict(zip(rows.tolist(), probs))
        out = []
        for abstract in abstracts:
            labelled = []
            for row in abstract:
                p = by_row[row]
                best = int(p.argmax())
                labelled.append({"sentence": flat[row], "label": self.labels[best],
                                 "probability": round(float(p[best]), 4),
                                 "probabilities": {l: round(float(x), 4) for l, x in zip(self.labels, p)}})
            out.append(labelled)
        return out
