"""What a run shows while it trains: progress bars, and TensorBoard scalars when asked.

Progress bars are tqdm.auto's (text in a terminal, a widget in a notebook): one per epoch
(tokens trained, loss, perplexity, tokens/s) and a passing one for each validation and test
pass. A bar that the time budget ends is drawn as a normal end: tqdm's notebook widget turns
red when a bar closes short of its total (rightly, for an error or Ctrl-C), so a budget stop
first sets the total to where the bar stopped (`end_bar`).

`logger=tensorboard` (a runtime field: it changes nothing a run learns, and a run may resume
with it on or off) also writes TensorBoard scalars to <run-dir>/tensorboard, read with
`tensorboard --logdir runs`: train/loss at every update step, train/lr and
train/tokens_per_s every 20 steps (when the loop reads its loss back from the device anyway),
valid/loss and valid/ppl at each epoch's end. The x axis is the update step, which the
checkpoint carries, so a resumed run continues its curves; TensorBoard drops what an
interrupted session logged after the checkpoint it resumes from (`purge_step`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmlib.errors import LMError

TENSORBOARD_DIR = "tensorboard"  # inside the run directory


def check_logger(logger: str | None) -> None:
    """Refuse a logger whose package is missing before anything is trained or written."""
    if logger == "tensorboard":
        _summary_writer()


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is missing
        raise LMError(
            "logger tensorboard needs the tensorboard package: pip install 'lmlib[tensorboard]' (or leave logger unset)"
        ) from None
    return SummaryWriter


class Tracker:
    """Progress bars (when `progress`) and an optional TensorBoard writer, for one training session."""

    def __init__(self, progress: bool = False, writer=None):
        self.progress, self.writer = progress, writer
        self._losses: list[tuple[int, torch.Tensor]] = []  # (step, loss) not yet written: read back in one sync
        self._since = (0, 0.0)  # (tokens, seconds) of the epoch at the last throughput point

    def bar(self, total: int, desc: str, initial: int = 0, leave: bool = False):
        """A tokens bar; hidden when progress is off."""
        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="tok",
            unit_scale=True,
            leave=leave,
            disable=not self.progress,
            dynamic_ncols=True,
        )

    def bar_name(self, name: str) -> str | None:
        """`name` for a pass's progress bar (lmlib.training.evaluate.progress_bar) when bars are on, else None."""
        return name if self.progress else None

    def step(self, step: int, loss: torch.Tensor) -> None:
        """Keep one update step's loss (still on the device) for the next `flush`."""
        if self.writer is not None:
            self._losses.append((step, loss.detach()))

    def flush(self, lr: float, tokens: int, seconds: float) -> None:
        """Write the kept losses, and lr and tokens/s (since the last flush of this epoch) at the last step."""
        if self.writer is None or not self._losses:
            return
        losses = torch.stack([loss.float() for _, loss in self._losses]).tolist()
        for (step, _), loss in zip(self._losses, losses):
            self.writer.add_scalar("train/loss", loss, step)
        last = self._losses[-1][0]
        self._losses.clear()
        done_tokens, done_seconds = self._since if tokens >= self._since[0] else (0, 0.0)  # a new epoch began
        if seconds > done_seconds:
            self.writer.add_scalar("train/tokens_per_s", (tokens - done_tokens) / (seconds - done_seconds), last)
        self.writer.add_scalar("train/lr", lr, last)
        self._since = (tokens, seconds)

    def epoch(self, step: int, row: dict) -> None:
        """The epoch's metrics row, at the step it ended on."""
        if self.writer is not None:
            for name in ("valid_loss", "valid_ppl"):
                self.writer.add_scalar(name.replace("_", "/", 1), row[name], step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def open_tracker(root: Path, logger: str | None, step: int, progress: bool) -> Tracker:
    """The session's tracker: TensorBoard in `root`/tensorboard when logger is tensorboard, from update `step` on."""
    if logger != "tensorboard":
        return Tracker(progress)
    writer = _summary_writer()(log_dir=str(root / TENSORBOARD_DIR), purge_step=step)
    return Tracker(progress, writer)


def end_bar(bar, stopped_on_budget: bool) -> None:
    """Close `bar`; a time-budget stop is a normal end (the widget turns red only when a bar closes short)."""
    if stopped_on_budget and not bar.disable and bar.total and bar.n < bar.total:
        bar.total = bar.n
        bar.set_description(f"{bar.desc.rstrip(': ')} (time budget)", refresh=False)
    bar.close()
