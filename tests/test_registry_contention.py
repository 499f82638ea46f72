"""Registry edits under contention (issue 11, point 7): concurrent add/update/remove processes beside
`pick` loops. Before: 22-37 of 60 edits failed with `could not lock ... within 15 s` (the wait
counted the whole queue ahead); now the wait restarts while the queue moves, and every edit lands."""

from __future__ import annotations

import pytest
from contention import contend


def test_concurrent_edits_beside_pick_loops_all_land(tmp_path):
    outcome = contend(tmp_path / "instances.toml", tmp_path / "state", instances=9, edits=9, pick_loops=2)
    assert outcome.failed == [] and outcome.registry_exact


@pytest.mark.slow
def test_sixty_concurrent_edits_beside_eight_pick_loops_all_land(tmp_path):
    outcome = contend(tmp_path / "instances.toml", tmp_path / "state", instances=45, edits=60, pick_loops=8)
    assert outcome.failed == [] and outcome.registry_exact
    assert outcome.picks > 0


def test_a_lock_wait_restarts_while_the_guarded_file_changes(tmp_path):
    import threading
    import time

    from ollamactl.core.errors import OllamactlError
    from ollamactl.core.state import atomic_files

    lock, target = tmp_path / "x.lock", tmp_path / "x"
    held = threading.Event()
    release = threading.Event()

    def holder():
        with atomic_files.locked(lock):
            held.set()
            for n in range(10):  # keeps "making progress" for ~1.5 s, longer than the waiter's timeout
                atomic_files.atomic_write(target, str(n).encode(), durable=False)
                time.sleep(0.15)
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(OllamactlError, match="could not lock"):  # progress stopped: it gives up after all
            with atomic_files.locked(lock, timeout=1.0, progress=lambda: atomic_files.file_stamp(target)):
                pass
        assert target.read_text() == "9"  # it waited through the holder's progress before giving up
    finally:
        release.set()
        thread.join()
