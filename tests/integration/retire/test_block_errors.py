# SPDX-License-Identifier: LGPL-2.1-or-later
"""OfflineBlocks/OnlineBlocks against the fake kernel's real errno: the error names a caller gets for a
write the kernel refuses (InvalidState, EINVAL) and one that does not finish in time (Timeout, the
write interrupted after BlockTimeoutSec=), and that nothing else changed."""

from conftest import ERROR, block_states, default_retire_spec


def test_offline_blocks_timeout(rt):
    """memory39 blocks in the kernel until a signal: the write is interrupted after 1 s, Timeout."""
    h = rt(spec=default_retire_spec(), retire={"BlockTimeoutSec": "1"})
    h.control("memory39.block", "offline\n")
    p = h.ctl("--verbose", "offline-blocks", "39")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "[%sTimeout]" % ERROR in p.stderr, p.stderr
    assert "was not offline after 1 s" in p.stderr, p.stderr
    h.sync()
    assert block_states(h.root)[39][0] == "online"


def test_offline_blocks_invalid_state(rt):
    """The kernel refuses the offline with EINVAL (a block with holes does): InvalidState, still online.
    (Offlining a block that is already offline is not an error: hotplugd answers that at once.)"""
    h = rt(spec=default_retire_spec())
    h.control("memory38.fail", "-22 1\n")
    p = h.ctl("--verbose", "offline-blocks", "38")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "[%sInvalidState]" % ERROR in p.stderr, p.stderr
    assert "(EINVAL)" in p.stderr, p.stderr
    h.sync()
    assert block_states(h.root)[38][0] == "online"
