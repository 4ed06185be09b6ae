"""The gateway: WebSocket /ws/count, REST /api/v1, gRPC CountService, the PWA's files.

Entry points for the CLI: :func:`serve_main` (``shelfcount serve``) and :func:`device_add`
(``shelfcount device add``). :func:`create_app` builds the Flask app around a
:class:`Services` (tests and embedding); :class:`GatewayServer` runs everything.
"""

from __future__ import annotations

from .app import create_app
from .serve import GatewayServer, device_add, serve_main
from .services import Services

__all__ = ["GatewayServer", "Services", "create_app", "device_add", "serve_main"]
