"""The HTTP gateway: an OpenAI-compatible API, jobs over HTTP and a dashboard, in front of the
orchestrator. It is one more gRPC client of the contract and holds no model."""
