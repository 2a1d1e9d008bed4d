"""Code shared by the transcriber, diarizer and orchestrator services."""
