"""Label the sentences of raw abstracts with a trained model (the same fast path as evaluation)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import torch

from . import numbers
from .encoding import build_examples, special_ids, tokenize_sentences
from .model import cpu_has_bf16, load_trained, predict_proba
from .sentences import InputError, split_abstract


class Labeler:
    """A loaded model with its tokenizer, context mode and label names."""

    def __init__(self, model, tokenizer, mode: str, labels: list[str]):
        self.model, self.tokenizer, self.mode, self.labels = model, tokenizer, mode, labels
        config = model.config
        self.max_length = getattr(config, "sentence_max_length", 128)
        self.context_max_length = getattr(config, "context_max_length", 512)
        self.number_form = getattr(config, "number_form", numbers.DIGITS)  # the training data's (train stage)
        self.cls, self.sep = special_ids(tokenizer)
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer's state is not safe to share between threads
        self.model.eval()
        if not torch.cuda.is_available() and cpu_has_bf16():
            self.model.to(torch.bfloat16)  # inference only: cast the weights once, not on every call

    @classmethod
    def load(cls, path: str | Path) -> "Labeler":
        return cls(*load_trained(path))

    def batch_size(self) -> int:
        """Sentences per forward pass. On CPU small batches win (measured on 2 cores with MiniLM, bf16, forward
        only: none 341 sentences/s at 16 vs 259 at 64; abstract 29 abstracts/s at 4 abstracts (~40 sentences)
        vs 25 at 32)."""
        if torch.cuda.is_available():
            return 256
        return 16 if self.mode == "none" else 40

    def label(self, texts: list[str], batch_size: int | None = None) -> list[list[dict]]:
        """For each abstract, its sentences with label and probability (all labels' in `probabilities`), and the
        section heading each stood under in a structured abstract (`heading`, None where there was none)."""
        split = [split_abstract(t) for t in texts]
        labelled = self.label_sentences([[s for _, s in pairs] for pairs in split], batch_size)
        for pairs, sentences in zip(split, labelled):
            for (heading, _), sentence in zip(pairs, sentences):
                sentence["heading"] = heading
        return labelled

    def label_sentences(self, split: list[list[str]], batch_size: int | None = None) -> list[list[dict]]:
        """Like label, for abstracts already split into sentences."""
        flat = [s for sentences in split for s in sentences]
        abstracts, start = [], 0
        for sentences in split:
            abstracts.append(list(range(start, start + len(sentences))))
            start += len(sentences)
        token_ids = self.token_ids(flat)
        examples = build_examples(token_ids, abstracts, self.mode, self.max_length,
                                  self.context_max_length, self.cls, self.sep)
        examples = [dict(zip(examples, v)) for v in zip(*examples.values())]
        rows, probs = predict_proba(self.model, examples, self.mode, self.tokenizer.pad_token_id,
                                    batch_size or self.batch_size())
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

    def token_ids(self, sentences: list[str]) -> list[list[int]]:
        """Word-piece ids of raw sentences, numbers in the form the model was trained on (`@` or digits)."""
        with self._tokenizer_lock:
            return tokenize_sentences(self.tokenizer, numbers.rewrite(sentences, self.number_form))

    def label_each(self, texts: list[str]) -> list[list[dict] | InputError]:
        """Like label, but a bad abstract yields its InputError in its place instead of failing them all."""
        try:
            return self.label(texts)
        except InputError:
            out: list[list[dict] | InputError] = []
            for text in texts:
                try:
                    out.append(self.label([text])[0])
                except InputError as e:
                    out.append(e)
            return out

    def label_chunks(self, chunks: Iterable[list[str]], workers: int | None = None) -> Iterator[list]:
        """label_each over chunks of abstracts, results in order, `workers` chunks at a time.

        On CPU each worker is a thread running the model on one core (PyTorch releases the GIL inside its
        kernels): on this project's 2-core machine that beats one process using both cores for every
        matrix product (MiniLM, `none`: 29.7 vs 21.1 abstracts/s; README). On GPU: one worker.
        """
        if workers is None:
            workers = 1 if torch.cuda.is_available() else len(os.sched_getaffinity(0))
        if workers <= 1:
            yield from map(self.label_each, chunks)
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                yield from pool.map(self.label_each, chunks)
        finally:
            torch.set_num_threads(threads)
