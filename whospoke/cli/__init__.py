"""The `whospoke` command: run the services locally, process files, check health."""
