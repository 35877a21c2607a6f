"""TensorBoard: every trial folder of a sweep holds event files with the metrics (Ray Tune's
TensorBoardX logger), so `tensorboard --logdir ray_results/NAME` shows them. Read back here with a
small TFRecord reader over tensorboardX's own protobuf (tensorboard itself is not a dependency)."""

from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX.proto import event_pb2


def scalars(path: Path) -> dict[str, list[float]]:
    """tag -> values, in order, from one events file (TFRecord: u64 length, u32 crc, data, u32 crc)."""
    data, found, offset = path.read_bytes(), {}, 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[offset + 12 : offset + 12 + length])
        offset += 12 + length + 4
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                found.setdefault(value.tag, []).append(value.simple_value)
    return found


def test_every_trial_logs_val_accuracy_for_tensorboard(smoke_sweeps_root):
    trials = [folder for folder in (smoke_sweeps_root / "smoke").glob("*/*") if (folder / "result.json").is_file()]
    assert len(trials) == 6  # three methods x two trials
    for trial in trials:
        (events,) = trial.glob("events.out.tfevents.*")
        values = scalars(events)["ray/tune/val_accuracy"]
        reported = [line for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        assert len(values) == len(reported) and all(0 <= v <= 1 for v in values)
