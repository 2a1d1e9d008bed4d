"""whospoke: speech transcription and speaker diarization as gRPC services.

`whospoke.v1` holds the generated protobuf and gRPC modules; `whospoke.common` the
code every service shares (audio chunks, errors, server bootstrap, metrics, models).
"""

from __future__ import annotations

__version__ = "0.1.0"
