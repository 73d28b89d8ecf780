"""The serving wing's command: `serve`, the page and JSON API for one model, and search by role too with
--index."""
from __future__ import annotations

import errno

from ..io import OutputError
from ..options import PORT, POSITIVE, add_model
from ..tracking.registry import local_folder


def add_serve(s) -> None:
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8000)
    s.add_argument("--threads", type=POSITIVE, default=4,
                   help="requests handled at once (the model runs one at a time)")
    s.add_argument("--index", help="also serve search by role over this index (the page's search view, "
                                   "GET /api/search)")
    add_model(s)


def serve(args) -> int:
    from ..inference.predict import Labeler
    from .web import create_app, make_server
    searcher = None
    if args.index:
        from ..search.query import Searcher
        searcher = Searcher(args.index)  # a folder without an index: one line, before the model loads
    labeler = Labeler.load(local_folder(args.model, args.run_id), args.backend)
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


COMMANDS = {
    "serve": ("the web page and JSON API on http://127.0.0.1:8000", add_serve, serve),
}
