"""trainables/atomic.py: a file or folder appears whole or not at all, and a failure leaves what was
there before as it was, with no temporary left behind."""

import os
import stat

import pytest

from trainables import atomic


class Boom(RuntimeError):
    pass


def fail_half_way(temporary):
    temporary.write_text("half of the n")
    raise Boom


def test_a_file_is_written_whole_with_the_usual_permissions(tmp_path):
    path = atomic.write_text(tmp_path / "new" / "report.md", "all of it\n")
    assert path.read_text() == "all of it\n"
    assert os.listdir(tmp_path / "new") == ["report.md"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_binary_writers_get_the_temporary_path(tmp_path):
    path = atomic.write_file(tmp_path / "x.bin", lambda temporary: temporary.write_bytes(b"\x00\x01"))
    assert path.read_bytes() == b"\x00\x01"


def test_a_failed_write_leaves_the_existing_file_and_no_temporary(tmp_path):
    path = tmp_path / "best_configs.json"
    path.write_text("the old one")
    with pytest.raises(Boom):
        atomic.write_file(path, fail_half_way)
    assert path.read_text() == "the old one"
    assert os.listdir(tmp_path) == ["best_configs.json"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        atomic.write_file(tmp_path / "sweep.json", fail_half_way)
    assert os.listdir(tmp_path) == []


def test_a_staging_folder_is_removed_whatever_happens(tmp_path):
    final = tmp_path / "cache" / "entry"
    with pytest.raises(Boom), atomic.staging_folder(final) as staging:
        (staging / "weights").write_text("half")
        raise Boom
    assert os.listdir(tmp_path / "cache") == [] and not final.exists()


def test_publish_keeps_a_finished_copy_of_another_process_and_raises_otherwise(tmp_path):
    final = tmp_path / "entry"
    with atomic.staging_folder(final) as staging:
        (staging / "done").write_text("mine")
        atomic.publish_folder(staging, final, finished=lambda folder: (folder / "done").is_file())
    assert (final / "done").read_text() == "mine"
    with atomic.staging_folder(final) as staging:  # a second writer loses the race: the first copy stays
        (staging / "done").write_text("theirs")
        atomic.publish_folder(staging, final, finished=lambda folder: (folder / "done").is_file())
    assert (final / "done").read_text() == "mine"
    with pytest.raises(OSError), atomic.staging_folder(final) as staging:
        (staging / "done").write_text("theirs")
        atomic.publish_folder(staging, final, finished=lambda folder: False)  # what is there is not whole
    assert sorted(os.listdir(tmp_path)) == ["entry"]


def test_replace_folder_swaps_a_checkpoint_and_leaves_no_old_copy(tmp_path):
    out = tmp_path / "checkpoint"
    for epoch in (1, 2):
        with atomic.staging_folder(out, prefix=".checkpoint-") as staging:
            (staging / "epoch").write_text(str(epoch))
            atomic.replace_folder(staging, out)
    assert (out / "epoch").read_text() == "2"
    assert os.listdir(tmp_path) == ["checkpoint"]
    (tmp_path / ".checkpoint-old").mkdir()  # left by a run killed between the two renames
    (tmp_path / ".checkpoint-old" / "epoch").write_text("0")
    with atomic.staging_folder(out) as staging:
        (staging / "epoch").write_text("3")
        atomic.replace_folder(staging, out)
    assert (out / "epoch").read_text() == "3" and os.listdir(tmp_path) == ["checkpoint"]
