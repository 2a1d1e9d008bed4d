"""The transcriber service: one faster-whisper model behind `whospoke.v1.Transcriber`."""
