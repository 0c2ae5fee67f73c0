"""Put this checkout's `lottery/` first on sys.path (also inside `dvc exp run --temp`).

`ROOT` is the project root the stages pass to the library (the directory holding
`stages/`: the project, or the workspace of a `dvc exp run --temp`). Until
`lottery.study.entry.stage_main` takes over, Ctrl-C ends the stage with one line and
exit status 130 (no traceback from the middle of an import).
"""

import os
import signal
import sys
from pathlib import Path


def _interrupted(signum: int, frame: object) -> None:
    sys.stderr.write("interrupted: the stage stopped by Ctrl-C while starting.\n")
    sys.stderr.flush()
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted)
#: Relative to the working directory: DVC runs a stage at the root, so ROOT is `.` there
#: and the paths a stage prints read as dvc.yaml spells them.
ROOT = Path(os.path.relpath(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT.resolve()))
