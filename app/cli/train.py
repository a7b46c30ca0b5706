"""``focalrig train``: train the event-guided focal-index network on synthetic stacks (fusion.net.train)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from app.cli.common import console, err_console, friendly_errors

DEFAULT_OUT = Path("runs/train")


@friendly_errors
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (configs/train/*.toml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoint.pt, best.pt, report.png, "
                                                          "log.jsonl.")] = DEFAULT_OUT,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")] = "auto",
) -> None:
    """Train the focal-index network on synthetic stacks rendered on the fly; resumable; reports validation PSNR.

    The best weights (best.pt) carry their config, seed, data recipe and this command; copy them to
    fusion/net/weights/focal_index_net.pt to ship them.
    """
    from fusion.net.train import Reporter, TrainConfig, Trainer

    command = "focalrig " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cfg = TrainConfig.load(config)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=err_console) as bar:
        task = bar.add_task("starting", total=None, detail="")

        class _Bar(Reporter):
            def status(self, message: str) -> None:
                bar.update(task, description=message, completed=0, total=None)

            def pool_progress(self, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, detail=f"{done}/{total} stacks")

            def step(self, step: int, total: int, m: dict[str, float]) -> None:
                bar.update(task, completed=step, total=total,
                           detail=f"loss {m['loss']:.4f}  val PSNR {m['val_psnr']:.2f} dB  {m['step_s']:.2f} s/step")

        trainer = Trainer(cfg, out, device=device, resume=resume, command=command, reporter=_Bar())
        final = trainer.run()
    real = (f"; real stacks Qabf {final['real_qabf']:.3f} (classical {final['real_qabf_classical']:.3f})"
            if "real_qabf" in final else "")
    console.print(f"done: step {trainer.step}, validation PSNR {final.get('psnr', float('nan')):.2f} dB "
                  f"(events zeroed {final.get('psnr_no_events', float('nan')):.2f} dB){real}; best weights in "
                  f"{out / 'best.pt'}, report {out / 'report.png'}", highlight=False)
