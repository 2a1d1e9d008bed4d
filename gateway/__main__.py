"""`whospoke-gateway`: serve the HTTP API with uvicorn until SIGTERM/SIGINT.

uvicorn handles the signals: it stops accepting, gives in-flight requests (streams
included) `--grace-seconds`, then runs the app's shutdown, which closes the channel.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from gateway.app import create_app
from gateway.config import gateway_config, parser
from whospoke.common import tracing
from whospoke.common.server import configure_logging

logger = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    config = gateway_config(args)
    configure_logging(config.log_level)
    tracing.setup("gateway")
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            ssl_certfile=config.tls_cert or None,
            ssl_keyfile=config.tls_key or None,
            timeout_graceful_shutdown=int(config.grace_seconds) or None,
            log_level=config.log_level.lower(),
            access_log=False,
            lifespan="on",
        )
    )
    scheme = "https" if config.tls_cert else "http"
    logger.info(
        "gateway on %s://%s:%d, orchestrator %s",
        scheme,
        config.host,
        config.port,
        config.upstream.address,
    )
    server.run()
    sys.exit(0 if server.started else 1)


if __name__ == "__main__":
    main()
