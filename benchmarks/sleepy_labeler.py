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


def install() -> None:
    from pubmed_rct.inference.predict import Labeler
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
