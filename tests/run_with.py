"""Run a script or module as `python ...` would, with a test's fault injected first, so that production code
carries no test hooks:

  python tests/run_with.py kill-after-checkpoint=52 stages/train.py     # SIGKILL once a checkpoint >= step 52 is saved
  python tests/run_with.py promote-delay=4 -m pubmed_rct promote ...    # 4 s between reading @champion and writing it
  python tests/run_with.py kill-in-model-save=1 stages/train.py         # SIGKILL once the weights are half saved
  python tests/run_with.py delete-after-listing=s3://b/k -m pubmed_rct label ...  # the key gone once listed

Works under torchrun too (`torchrun ... tests/run_with.py kill-after-checkpoint=52 stages/train.py`); the fault is
patched into the project found from the current directory, as the stage scripts import it.
"""
import os
import runpy
import signal
import sys
import time


def kill_after_checkpoint(step: str) -> None:
    """A real SIGKILL right after the first checkpoint at or past `step` is on disk (rank 0 saves it; torchrun
    then ends the other ranks)."""
    from pubmed_rct.training import checkpoints
    save = checkpoints.save

    def save_then_die(ckpt, model, optimizer, scheduler, state, *args, **kwargs):
        save(ckpt, model, optimizer, scheduler, state, *args, **kwargs)
        if state["step"] >= int(step):
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.save = save_then_die


def kill_in_model_save(_: str) -> None:
    """A real SIGKILL while the trained model is being saved, after the last step: its weights are written, its
    tokenizer and ONNX file not yet."""
    import transformers
    save = transformers.PreTrainedModel.save_pretrained

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    transformers.PreTrainedModel.save_pretrained = save_then_die


def delete_after_listing(uri: str) -> None:
    """The label job's inputs listed, then one of them deleted (as another process might), before any is read."""
    from pubmed_rct.literature import inputs
    expand = inputs.expand

    def expand_then_delete(*args, **kwargs):
        found = expand(*args, **kwargs)
        inputs.s3(args[2] if len(args) > 2 else kwargs.get("options")).rm(uri)
        return found
    inputs.expand = expand_then_delete


def promote_delay(seconds: str) -> None:
    """Widen promote's read-to-write window: two promotions then both read the champion before either writes,
    unless the lock serialises them."""
    from pubmed_rct.tracking import registry
    read = registry._champion

    def slow_read(*args, **kwargs):
        champion = read(*args, **kwargs)
        time.sleep(float(seconds))
        return champion
    registry._champion = slow_read


FAULTS = {"kill-after-checkpoint": kill_after_checkpoint, "kill-in-model-save": kill_in_model_save,
          "delete-after-listing": delete_after_listing, "promote-delay": promote_delay}

if __name__ == "__main__":
    fault, value = sys.argv[1].split("=", 1)
    sys.path.insert(0, os.getcwd())  # the project under test, as `python stages/x.py` and `python -m` find it
    FAULTS[fault](value)
    if sys.argv[2] == "-m":
        sys.argv = [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
