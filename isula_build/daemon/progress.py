"""Progress events (isula_build/progress.py) as the wire's Progress messages (control.proto)."""

from __future__ import annotations

from isula_build.api import control_pb2 as pb
from isula_build.progress import BlobProgress, Event


def wire_progress(event: Event) -> pb.Progress:
    if isinstance(event, BlobProgress):
        return pb.Progress(blob=pb.BlobProgress(id=event.id, done=event.done, total=event.total,
                                              seconds=event.seconds))
    return pb.Progress(step=pb.StepTime(step=event.step, seconds=event.seconds))
