"""Label the sentences of raw abstracts with a trained model (the same fast path as evaluation)."""
from __future__ import annotations

import functools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import torch

from . import cpu_path, onnx_runtime
from ..text import headings, numbers
from ..modeling import spec
from ..modeling.encoding import build_examples, special_ids, tokenize_sentences
from ..modeling.model import cpu_has_bf16, load_tokenizer, load_trained, predict_proba, trained_config
from ..choices import BACKENDS
from .onnx_runtime import OnnxModel
from ..text.sentences import InputError, split_abstract

log = logging.getLogger(__name__)
# What each labelled sentence holds, besides every label's probability (`probabilities`): the one schema the
# command line, the API, the MLflow pyfunc and the label job's parts are made from.
SENTENCE_FIELDS = ("sentence", "label", "probability", "heading", "heading_category", "source")


def split_sections(text: str) -> list[tuple[str | None, str | None, str]]:
    """(heading, its NLM category, sentence) of a plain-text abstract: the sentences of split_abstract."""
    return [(h, headings.category(h), s) for h, s in split_abstract(text)]


class Labeler:
    """A loaded model with its tokenizer, context and label names."""

    def __init__(self, model, tokenizer, context: str, labels: list[str], precision: str = "auto"):
        """precision (PyTorch only): auto (bf16 on GPUs and on CPUs with native bf16, else fp32) | fp32."""
        self.model, self.tokenizer, self.context, self.labels = model, tokenizer, context, labels
        self.backend = "onnx" if isinstance(model, OnnxModel) else "torch"
        self.precision = "fp32" if self.backend == "onnx" else precision
        self.on_gpu = self.backend == "torch" and torch.cuda.is_available()
        settings = spec.read(model.config)  # the training data's lengths and number form (train stage)
        self.max_length, self.context_max_length = settings.sentence_max_length, settings.context_max_length
        self.number_form = settings.number_form
        self.cls, self.sep = special_ids(tokenizer)
        self._by_category = {l.upper(): l for l in labels}  # NLM's BACKGROUND is the hub's `background`
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer's state is not safe to share between threads
        self.model.eval()
        if self.backend == "torch" and self.precision == "auto" and not self.on_gpu and cpu_has_bf16():
            self.model.to(torch.bfloat16)  # inference only: cast the weights once, not on every call

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> "Labeler":
        """The model in folder `path`. backend: auto (ONNX Runtime on CPU where the folder holds an ONNX file
        and onnxruntime imports, else PyTorch, saying why in one log line) | onnx (ONNX Runtime or an error) |
        torch (PyTorch; on CPU its weights in bf16 where the CPU has native bf16)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        config, context, labels = trained_config(path)  # no model here: one line, before anything else
        if backend == "onnx" or (backend == "auto" and not torch.cuda.is_available()):
            file, decision = cpu_path.onnx_file(path), cpu_path.read(path)
            failed = f"{decision['why']}; " if decision and decision.get("file") is None and "why" in decision else ""
            why = onnx_runtime.available() or (None if file else (
                f"{path} holds no ONNX file ({failed}`python -m pubmed_rct export-onnx {path}` writes one)"))
            if why is None:
                log.warning("CPU inference: ONNX Runtime, %s: %s", file.name, cpu_path.describe(decision))
                return cls(OnnxModel(file, config), load_tokenizer(str(path)), context, labels)
            if backend == "onnx":
                raise ValueError(f"--backend onnx: {why}")
            log.warning("inference through PyTorch: %s", why)
        return cls(*load_trained(path))

    def batch_size(self) -> int:
        """Sentences per forward pass. On CPU small batches win (measured on 2 cores with MiniLM, bf16, forward
        only: none 341 sentences/s at 16 vs 259 at 64; abstract 29 abstracts/s at 4 abstracts (~40 sentences)
        vs 25 at 32)."""
        if self.on_gpu:
            return 256
        return 16 if self.context == "none" else 40

    def label(self, texts: list[str], batch_size: int | None = None, relabel: bool = False) -> list[list[dict]]:
        """For each abstract, its sentences with label and probability (all labels' in `probabilities`), and the
        section heading each stood under in a structured abstract (`heading`, None where there was none).

        A heading NLM maps to a category (`heading_category`: RESULT(S) → RESULTS) gives its sentences the
        authors' label (`source: author`) where the model has that label; `relabel` gives them the model's
        (`source: model`), as every other sentence has. The model reads every sentence either way."""
        return self.label_sections([split_sections(t) for t in texts], batch_size, relabel)

    def label_sections(self, split: list[list[tuple[str | None, str | None, str]]], batch_size: int | None = None,
                       relabel: bool = False) -> list[list[dict]]:
        """Like label, for abstracts already split into (heading, its category, sentence) triples."""
        labelled = self.label_sentences([[s for _, _, s in triples] for triples in split], batch_size)
        for triples, sentences in zip(split, labelled):
            for (heading, category, _), sentence in zip(triples, sentences):
                author = None if relabel or category is None else self._by_category.get(category.upper())
                sentence.update(heading=heading, heading_category=category, source="author" if author else "model")
                if author:
                    sentence["label"], sentence["probability"] = author, sentence["probabilities"][author]
        return labelled

    def label_sentences(self, split: list[list[str]], batch_size: int | None = None) -> list[list[dict]]:
        """Like label, for abstracts already split into sentences."""
        flat = [s for sentences in split for s in sentences]
        abstracts, start = [], 0
        for sentences in split:
            abstracts.append(list(range(start, start + len(sentences))))
            start += len(sentences)
        token_ids = self.token_ids(flat)
        examples = build_examples(token_ids, abstracts, self.context, self.max_length,
                                  self.context_max_length, self.cls, self.sep)
        examples = [dict(zip(examples, v)) for v in zip(*examples.values())]
        rows, probs = predict_proba(self.model, examples, self.context, self.tokenizer.pad_token_id,
                                    batch_size or self.batch_size(), self.precision)
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

    def label_each(self, texts: list[str], relabel: bool = False) -> list[list[dict] | InputError]:
        """Like label, but a bad abstract yields its InputError in its place instead of failing them all."""
        try:
            return self.label(texts, relabel=relabel)
        except InputError:
            out: list[list[dict] | InputError] = []
            for text in texts:
                try:
                    out.append(self.label([text], relabel=relabel)[0])
                except InputError as e:
                    out.append(e)
            return out

    def label_chunks(self, chunks: Iterable[list[str]], workers: int | None = None,
                     relabel: bool = False) -> Iterator[list]:
        """label_each over chunks of abstracts, results in order, `workers` chunks at a time.

        On CPU each worker is a thread running the model on one core (PyTorch releases the GIL inside its
        kernels): on this project's 2-core machine that beats one process using both cores for every
        matrix product (MiniLM, `none`: 29.7 vs 21.1 abstracts/s; benchmarks/README.md). On GPU: one worker.
        """
        if workers is None:
            workers = 1 if self.on_gpu else len(os.sched_getaffinity(0))
        each = functools.partial(self.label_each, relabel=relabel)
        if workers <= 1:
            yield from map(each, chunks)
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                yield from pool.map(each, chunks)
        finally:
            torch.set_num_threads(threads)
