"""The tracking wing's command: `promote` (the alias champion moved to a registered version that beats it)."""
from __future__ import annotations

from pathlib import Path


def add_promote(r) -> None:
    r.add_argument("--name", help="registered model (default: params.yaml tracking.registered_model)")
    r.add_argument("--metric", help="higher is better (default: params.yaml tracking.promote_metric)")
    r.add_argument("--version", help="the version to promote (default: the newest)")
    r.add_argument("--best", action="store_true", help="the candidate is the version with the best metric")
    r.add_argument("--force", action="store_true", help="promote --version even if it does not beat the champion")


def promote(args) -> int:
    from .. import params
    from ..io import ROOT
    from . import registry
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


COMMANDS = {"promote": ("move the alias champion to a registered model version that beats it", add_promote, promote)}
