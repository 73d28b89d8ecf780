"""Benchmark-only Spark worker plug-in: a stand-in model that waits a fixed time per abstract without using the
CPU, so that a cluster simulated on one small machine shows how the label job scales with its workers.

Loaded by Spark itself, not by the project: `spark.python.daemon.module sleepy_labeler` (in the benchmark's
spark-defaults.conf) makes every executor's Python daemon import this module, which replaces
`Labeler.label_sentences` (the forward pass and what surrounds it) in the daemon before it forks its workers,
then runs Spark's own daemon. Splitting, tokenizing, reading and writing stay real. The wait per abstract comes
from SLEEPY_MS (default 200).
"""
from __future__ import annotations

import os
import time


TARGETS = ("pubmed_rct.inference.predict", "pubmed_rct.predict")  # where Labeler is, now and before the wings


def install() -> None:
    try:
        from pubmed_rct.inference.predict import Labeler
    except ImportError:  # a checkout from before the wings (--root of an older commit): the same class, elsewhere
        from pubmed_rct.predict import Labeler
    patch(Labeler)


def hook() -> None:
    """Patch Labeler whenever its module is imported, in any Python process (sitecustomize, sleepy_site/): for
    Python workers that Spark does not start from the daemon module, as an older checkout's mapInArrow ones."""
    import importlib.abc
    import importlib.util
    import sys

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in TARGETS:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module):
                    run(module)
                    patch(module.Labeler)
                spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, Finder())


def patch(Labeler) -> None:
    wait = float(os.environ.get("SLEEPY_MS", "200")) / 1000

    def label_sentences(self, split, batch_size=None):
        time.sleep(wait * len(split))  # the GPU's time, as a remote accelerator would spend it: no CPU here
        return [[{"sentence": s, "label": self.labels[i % len(self.labels)], "probability": 0.9,
                  "probabilities": {l: 0.9 if j == i % len(self.labels) else 0.1 / (len(self.labels) - 1)
                                    for j, l in enumerate(self.labels)}}
                 for i, s in enumerate(sentences)] for sentences in split]
    Labeler.label_sentences = label_sentences


if __name__ == "__main__":
    install()
    from pyspark import daemon
    daemon.manager()
