"""The contract in Python: the domain types every service and client shares, the
protobuf ↔ domain converters, and each message's validation rules, once.

It depends only on protobuf, the generated modules (`whospoke.v1`) and
`whospoke.common.errors`; services import it and `whospoke.common`, never each
other, so the orchestrator installs and runs without any model stack. The
import contract in `pyproject.toml` (`make lint`) keeps it that way.
"""
