"""Two process facts, written once: is a process of this host alive, and have all processes of
a multi-process run reached the same point."""
import os

import jax


def alive(pid) -> bool:
    """Whether the process `pid` (an int or its text) still runs on this host."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def sync(name: str) -> None:
    """A barrier named `name` over every process of the run (nothing to wait for alone)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
