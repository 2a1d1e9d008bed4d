"""The diarizer service: pyannote.audio segmentation + speaker embeddings behind
`whospoke.v1.Diarizer` (the service itself is in progress; `models` loads the
embedded offline models)."""
