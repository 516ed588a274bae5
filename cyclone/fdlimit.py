"""The process's open-file limit: raising it at startup and budgeting descriptors.

Disk stores keep whisper files open between writes (`open_file_cache_size`);
the budget here keeps that cache from starving sockets of descriptors.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# descriptors kept free for sockets, logs and files opened outside the caches
RESERVED_FDS = 4096


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.info("open-file limit raised from %d to %d", soft, hard)
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d: %s", soft, e)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fd_budget(requested: int) -> int:
    """`requested` cached descriptors, cut down to what the open-file limit leaves."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    room = soft - RESERVED_FDS if soft > 2 * RESERVED_FDS else soft // 2
    return max(1, min(requested, room))
