"""The inference wing's commands: `predict` (one abstract, or JSON Lines of many) and `export-onnx`."""
from __future__ import annotations

import codecs
import itertools
import json
import os
import sys

from ..choices import ONNX_PRECISIONS
from ..io import check_output, write_text
from ..options import POSITIVE, add_model
from ..text.normalize import utf8_fault
from ..text.sentences import MAX_CHARS, InputError
from ..tracking.registry import local_folder
from .render import render


def add_predict(p) -> None:
    p.add_argument("text", nargs="?", help="the abstract; omit to read --file or standard input")
    p.add_argument("-f", "--file", help="read the abstract from this file")
    p.add_argument("--jsonl", help="batch: a JSON Lines file of {\"id\", \"text\"} abstracts")
    p.add_argument("-o", "--output", help="write the output to this file, atomically (default: standard output)")
    p.add_argument("--batch-size", type=POSITIVE, default=32, help="batch: abstracts per chunk")
    p.add_argument("--workers", type=POSITIVE,
                   help="batch: chunks labelled at once (default: one per CPU core; 1 on GPU)")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--relabel", action="store_true",
                   help="the model labels structured abstracts too (default: sections under a heading NLM maps to "
                        "a category keep the authors' label, source: author)")
    add_model(p)


def add_export_onnx(e) -> None:
    e.add_argument("model", nargs="?", default="models/model", help="a model folder written by the train stage")
    e.add_argument("--precision", choices=ONNX_PRECISIONS, default="int8",
                   help="int8: weights stored as int8 (the default; docs/predict.md: CPU inference) | fp32")


def read_input(args) -> str:
    if args.text is not None:
        try:  # Python reads a non-UTF-8 argument with surrogateescape: give back the bytes the shell passed
            args.text.encode("utf-8")
        except UnicodeEncodeError:
            return _read_limited(iter([os.fsencode(args.text)]), "the argument")
        return args.text
    where = f"-f {args.file}" if args.file else "standard input"
    try:
        with (open(args.file, "rb") if args.file else sys.stdin.buffer) as f:
            return _read_limited(iter(lambda: f.read(1 << 16), b""), where)
    except OSError as e:  # a folder, a missing or unreadable file
        raise InputError(f"{where}: cannot be read ({e.strerror or e}); give a text file") from e


def _read_limited(blocks, where: str) -> str:
    """The UTF-8 text of `blocks`, read no further than one character past the limit of one abstract: a huge
    file (or /dev/zero) is refused after reading MAX_CHARS + 1 characters, not after reading it whole."""
    decoder, text, offset, size = codecs.getincrementaldecoder("utf-8")(), [], 0, 0
    for block in itertools.chain(blocks, [b""]):  # b"": the end, where the decoder finishes
        pending = len(decoder.getstate()[0])
        try:
            chars = decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:
            raise InputError(f"{where} is not UTF-8 ({utf8_fault(e, offset - pending)}); re-encode it as "
                             "UTF-8") from e
        offset, size = offset + len(block), size + len(chars)
        text.append(chars)
        if size > MAX_CHARS:
            raise InputError(f"{where} holds more than {MAX_CHARS:,} characters; the limit is one abstract of "
                             f"{MAX_CHARS:,} (for many abstracts, use --jsonl)")
        if not block:
            break
    return "".join(text)


def predict(args) -> int:
    if args.output:  # before the model loads: a bad -o fails now, not after labelling everything
        check_output(args.output, tuple(x for x in (args.jsonl, args.file) if x))
    text = None if args.jsonl else read_input(args)  # bad input fails before the model loads, too
    from .predict import Labeler
    labeler = Labeler.load(local_folder(args.model, args.run_id), args.backend)
    if args.jsonl:
        return predict_batch(labeler, args)
    sentences = labeler.label([text], relabel=args.relabel)[0]
    text = render(sentences, args.format, labeler.labels, colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if args.output:
        write_text(args.output, text + "\n")
    else:
        print(text)
    return 0


def predict_batch(labeler, args) -> int:
    """JSON Lines in ({"id": ..., "text": ...} or a JSON string per line), JSON Lines of sentences out."""
    from tqdm.auto import tqdm
    from ..text.records import jsonl
    records, errors = [], []
    try:
        with open(args.jsonl, "rb") as stream:
            read = list(jsonl(args.jsonl, stream))  # the label job's reader: one way to read JSON Lines
    except OSError as e:
        raise InputError(f"--jsonl {args.jsonl}: cannot be read ({e.strerror or e}); give a JSON Lines file") from e
    for r in read:
        if r.error:
            errors.append(f"{r.where}: {r.error}")
        else:
            records.append((r.line, {"id": r.id, "text": r.text}))
    chunks = [records[start:start + args.batch_size] for start in range(0, len(records), args.batch_size)]
    results = labeler.label_chunks(([item["text"] for _, item in chunk] for chunk in chunks), args.workers,
                                   args.relabel)
    out_lines = []
    with tqdm(total=len(records), desc="abstracts", unit="abstract", file=sys.stderr) as bar:
        for chunk, labelled in zip(chunks, results):
            for (number, item), sentences in zip(chunk, labelled):
                if isinstance(sentences, InputError):
                    errors.append(f"{args.jsonl}:{number}: {sentences}")
                else:
                    out_lines.append(json.dumps({"id": item["id"], "sentences": sentences}))
            bar.update(len(chunk))
    text = "\n".join(out_lines) + ("\n" if out_lines else "")
    if args.output:
        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"predict: {len(out_lines)} of {len(out_lines) + len(errors)} abstracts labelled, {len(errors)} bad "
          f"line(s){f'; written to {args.output}' if args.output else ''}", file=sys.stderr)
    return 1 if errors else 0


def export_onnx(args) -> int:
    from .onnx_runtime import export
    path = export(args.model, args.precision)
    print(f"export-onnx: wrote {path} ({path.stat().st_size / 2 ** 20:.1f} MiB)")
    return 0


COMMANDS = {
    "predict": ("label the sentences of an abstract (argument, --file or stdin)", add_predict, predict),
    "export-onnx": ("write the ONNX Runtime file of a model folder trained before the train stage wrote one (CPU "
                    "inference: predict, serve and label use it)", add_export_onnx, export_onnx),
}
