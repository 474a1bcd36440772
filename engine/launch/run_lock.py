"""One run per output directory: an exclusive POSIX lock (`fcntl.lockf`) on
`OUTPUT_DIR/run.lock`, held for the life of the process that took it.

The kernel releases it on any exit, kill -9 included, so a crashed or preempted run never leaves
a stale lock; NFS (lockd, v4) and Lustre/GPFS mounted with locking honour it across nodes. The
file names the holder (pid, host, Slurm job, start time) for the error a second run gets. Where
the file system has no locks, the run says so and goes on unlocked.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import os
import socket
from pathlib import Path

from engine.errors import ConfigError

LOCK_FILE = "run.lock"
_held_locks = []  # open lock files: closing one would release its lock


def lock(out: Path) -> None:
    """Hold `out`'s run lock for the life of this process, or fail naming its holder."""
    f = (out / LOCK_FILE).open("a+")
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            f.close()
            print(f"warning: cannot lock {out / LOCK_FILE} ({e.strerror}): nothing stops "
                  f"another run from using output_dir={out} at the same time", flush=True)
            return
        f.seek(0)
        holder = f.read().strip() or "holder unknown"
        f.close()
        raise ConfigError(f"output_dir={out} is in use by another run ({holder}); wait for it "
                          f"to end or choose another output_dir") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {socket.gethostname()}"
            + (f", Slurm job {os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ
               else "")
            + f", since {datetime.datetime.now().isoformat(timespec='seconds')}\n")
    f.flush()
    _held_locks.append(f)
