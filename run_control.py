"""A training process's control: its ranks under torchrun, Ctrl-C and SIGTERM, the checkpoint it saves when
stopped, and the command that resumes it.
"""
import dataclasses
import os
import shlex
import signal
import sys
import threading
import time

import torch
import torch.distributed as dist

from command_line import script_command
from model import save_checkpoint

REPEAT_GRACE = 1.0  # seconds in which a second stop signal is the same request (torchrun passes Ctrl-C on)


def checkpoint_of(run, progress):
    """The one dict a checkpoint is."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "progress": dataclasses.asdict(progress), "params": dataclasses.asdict(run.params),
            "charset": run.charset.chars, "torch_rng": torch.get_rng_state()}


def stop_interrupted(run, progress, log, number):
    """Save last.pt (rank 0), say how to continue, and exit with 128 + the signal's number."""
    log.close()
    if run.ranks.main:
        last = os.path.join(run.params.model_dir, "last.pt")
        save_checkpoint(last, checkpoint_of(run, progress))
        print(f"\ninterrupted: saved {last} at step {progress.step}; continue with: "
              f"{resume_command(run)}", flush=True)
    run.ranks.close(together=True)
    raise SystemExit(128 + number)


def resume_command(run):
    """The command that continues this run, as it can be pasted into the shell it was started from."""
    def short(path):
        return min(path, os.path.relpath(path), key=len)

    script = shlex.quote(short(os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py")))
    model_dir = f"--model_dir={shlex.quote(run.params.model_dir)}"
    if run.ranks.world > 1:
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        launcher = f"{shlex.quote(short(torchrun) if os.path.isfile(torchrun) else 'torchrun')} --standalone " \
                   f"--nproc_per_node={run.ranks.world}"
        return f"{launcher} {script} --resume {model_dir}"
    return f"{script_command(script, 'train', python=shlex.quote(short(sys.executable)))} --resume {model_dir}"


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM only set `caught`: the step in flight finishes, so last.pt always holds a
    consistent (weights, optimizer, progress). A second signal stops at once (KeyboardInterrupt)."""

    NUMBERS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.caught, self.at, self.previous = None, 0.0, {}

    def __enter__(self):
        # Handlers can only be installed from the main thread (not, e.g., in a test's worker thread).
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self.handle) for number in self.NUMBERS}
        return self

    def __exit__(self, *exception):
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def handle(self, number, frame):
        if self.caught is None:
            self.caught, self.at = number, time.monotonic()
        elif time.monotonic() - self.at > REPEAT_GRACE:
            raise KeyboardInterrupt


class Ranks:
    """torchrun's processes (DistributedDataParallel) when WORLD_SIZE > 1, else one process, rank 0 of 1."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device("cpu")

    def setup(self, device):
        if self.world > 1:
            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.device = device
        return device

    @property
    def main(self):
        return self.rank == 0

    def agree(self, *flags):
        """Each flag, true when it is true on any rank: all ranks stop at the same step (a time budget may
        run out on one rank a step earlier, a signal reach one rank first)."""
        if self.world == 1:
            return flags
        values = torch.tensor([float(flag) for flag in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(value) for value in values.tolist())

    def close(self, together=False):
        """Leave the process group. `together` (a normal end): first wait until every rank is here, so that
        no rank tears its connections down while another still uses them (gloo then aborts the process)."""
        if self.world > 1 and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()
