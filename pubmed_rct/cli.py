"""Command line: `python -m pubmed_rct predict ...` and `python -m pubmed_rct serve`."""
from __future__ import annotations

import argparse
import codecs
import errno
import itertools
import json
import os
import sys
from pathlib import Path

from .io import OutputError, check_output, write_text
from .onnx_inference import BACKENDS, PRECISIONS
from .sections import sections
from .sentences import MAX_CHARS, InputError

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m", "\033[37m"]
RESET, BOLD = "\033[0m", "\033[1m"


def render(sentences: list[dict], fmt: str, labels: list[str], colour: bool = False) -> str:
    """The labelled abstract as JSON, Markdown or text; a structured abstract's own heading is shown where it
    begins, in the role's section."""
    if fmt == "json":
        return json.dumps({"sentences": sentences, "sections": sections(sentences)}, indent=2)
    lines, heading = [], None
    for sec in sections(sentences):
        title = sec["label"].upper()
        shown = []
        for s in sec["sentences"]:
            new = s.get("heading") if s.get("heading") not in (None, heading) else None
            heading = s.get("heading", heading)
            shown.append((new, s))
        if fmt == "markdown":
            lines.append(f"**{title}:** " + " ".join((f"_{new}:_ " if new else "") + s["sentence"]
                                                      for new, s in shown) + "\n")
            continue
        c = COLOURS[labels.index(sec["label"]) % len(COLOURS)] if colour else ""
        lines.append(f"{BOLD if colour else ''}{c}{title}:{RESET if colour else ''}")
        for new, s in shown:
            if new:
                lines.append(f"  [{new}]")
            lines.append(f"  {c}{s['sentence']}{RESET if colour else ''}  ({s['probability']:.2f})")
    return "\n".join(lines)


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
            raise InputError(f"{where} is not UTF-8 (byte {e.object[e.start]:#04x} at offset "
                             f"{offset - pending + e.start}); re-encode it as UTF-8") from e
        offset, size = offset + len(block), size + len(chars)
        text.append(chars)
        if size > MAX_CHARS:
            raise InputError(f"{where} holds more than {MAX_CHARS:,} characters; the limit is one abstract of "
                             f"{MAX_CHARS:,} (for many abstracts, use --jsonl)")
        if not block:
            break
    return "".join(text)


def model_dir(args) -> Path:
    """The local model folder: --model as a folder, or a model URI (models:/name@alias, models:/name/N,
    runs:/<id>/model) or --run-id downloaded through MLflow."""
    from . import registry
    if args.run_id:
        return registry.resolve(f"runs:/{args.run_id}/model")
    if registry.is_uri(args.model):
        return registry.resolve(args.model)
    return Path(args.model)


def promote(args) -> int:
    from . import registry
    from . import params
    from .io import ROOT
    name, metric = args.name, args.metric
    if not (name and metric):  # this folder's params.yaml, else the project's own (the registry's machine)
        here = Path(params.FILE)
        tracking = params.load(here if here.is_file() else ROOT / params.FILE).tracking
        name, metric = name or tracking.registered_model, metric or tracking.promote_metric
    if not name:
        raise registry.RegistryError("params.yaml tracking.registered_model is empty (registration is off); give "
                                     "--name")
    if args.force and not args.version:
        raise registry.RegistryError("--force needs --version N: a forced promotion names the version it promotes")
    if args.best and args.version:
        raise registry.RegistryError("--best and --version N name the candidate two ways; give one")
    _, text = registry.promote(name, metric, args.version, args.force, args.best)
    print(text)
    return 0


def predict(args) -> int:
    if args.output:  # before the model loads: a bad -o fails now, not after labelling everything
        check_output(args.output, tuple(x for x in (args.jsonl, args.file) if x))
    text = None if args.jsonl else read_input(args)  # bad input fails before the model loads, too
    from .predict import Labeler
    labeler = Labeler.load(model_dir(args), args.backend)
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
    from .literature.inputs import open_input
    from .literature.reading import jsonl
    records, errors = [], []
    with open_input(args.jsonl) as stream:
        read = list(jsonl(args.jsonl, stream))  # the label job's reader: one way to read JSON Lines
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
    from .onnx_inference import export
    path = export(args.model, args.precision)
    print(f"export-onnx: wrote {path} ({path.stat().st_size / 2 ** 20:.1f} MiB)")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (what is wrong, where --help is) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`), checked before any work."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range; give a whole number {bound}")
        return value
    return parse


POSITIVE, PORT = whole_number(1), whole_number(1, 65535)


def serve(args) -> int:
    from .predict import Labeler
    from .web import create_app, make_server
    searcher = None
    if args.index:
        from .search.query import Searcher
        searcher = Searcher(args.index)  # a folder without an index: one line, before the model loads
    labeler = Labeler.load(model_dir(args), args.backend)
    try:
        server = make_server(create_app(labeler, searcher), args.host, args.port, args.threads)
    except OSError as e:  # the port taken, the address not this machine's, a port below 1024 without root
        why = {errno.EADDRINUSE: "is in use (another server?); choose another with --port",
               errno.EADDRNOTAVAIL: "is not an address of this machine; give --host 127.0.0.1 or one of its own",
               errno.EACCES: "needs more privileges (ports below 1024); choose another with --port"}
        raise OutputError(f"{args.host}:{args.port} {why.get(e.errno, f'cannot be served ({e.strerror or e})')}") \
            from e
    print(f"serving on http://{args.host}:{server.effective_port} (Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m pubmed_rct", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="label the sentences of an abstract (argument, --file or stdin)")
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
    model_help = ("a model folder written by the train stage, or a model in MLflow: models:/pubmed-rct@champion, "
                  "models:/pubmed-rct/3, runs:/<run id>/model")
    p.add_argument("--model", default="models/model", help=model_help)
    p.add_argument("--run-id", help="use the model logged with this MLflow run instead")
    s = sub.add_parser("serve", help="the web page and JSON API on http://127.0.0.1:8000")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8000)
    s.add_argument("--threads", type=POSITIVE, default=4,
                   help="requests handled at once (the model runs one at a time)")
    s.add_argument("--model", default="models/model", help=model_help)
    s.add_argument("--run-id")
    s.add_argument("--index", help="also serve search by role over this index (the page's search view, "
                                   "GET /api/search)")
    from .literature import command as label_command
    lb = sub.add_parser("label", help=label_command.HELP)
    label_command.add_arguments(lb, POSITIVE, model_help, BACKENDS)
    from .search import command as search_command
    ix = sub.add_parser("index", help=search_command.INDEX_HELP)
    search_command.add_index_arguments(ix)
    se = sub.add_parser("search", help=search_command.SEARCH_HELP)
    search_command.add_search_arguments(se, POSITIVE)
    e = sub.add_parser("export-onnx", help="write the ONNX Runtime file of a model folder trained before the train "
                                           "stage wrote one (CPU inference: predict, serve and label use it)")
    e.add_argument("model", nargs="?", default="models/model", help="a model folder written by the train stage")
    e.add_argument("--precision", choices=PRECISIONS, default="int8",
                   help="int8: weights stored as int8 (the default; docs/predict.md: CPU inference) | fp32")
    for sp in (p, s):
        sp.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: ONNX Runtime on CPU where the model folder holds an ONNX file, else PyTorch | "
                             "onnx | torch (GPU inference is PyTorch)")
    r = sub.add_parser("promote", help="move the alias champion to a registered model version that beats it")
    r.add_argument("--name", help="registered model (default: params.yaml tracking.registered_model)")
    r.add_argument("--metric", help="higher is better (default: params.yaml tracking.promote_metric)")
    r.add_argument("--version", help="the version to promote (default: the newest)")
    r.add_argument("--best", action="store_true", help="the candidate is the version with the best metric")
    r.add_argument("--force", action="store_true", help="promote --version even if it does not beat the champion")
    args = parser.parse_args(argv)
    from .lifetime import Busy
    from .registry import RegistryError
    from .tracking import TrackingError
    try:
        if args.command == "predict":
            return predict(args)
        if args.command == "promote":
            return promote(args)
        if args.command == "label":
            return label_command.main(args, model_dir)
        if args.command == "export-onnx":
            return export_onnx(args)
        if args.command == "index":
            return search_command.index_main(args)
        if args.command == "search":
            return search_command.search_main(args)
        return serve(args)
    except (InputError, OutputError, FileNotFoundError, ValueError, RegistryError, TrackingError, Busy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped: what was written is kept; the same command goes on from there", file=sys.stderr)
        return 130
