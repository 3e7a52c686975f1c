"""Jupyter config file: TCP_NODELAY on a gateway's kernel websocket.

Pass it to the gateway with ``--config=deploy/gateway/nodelay_config.py``.

Why: neither jupyter_server 1.24 nor 2.x calls tornado's ``WebSocketHandler.set_nodelay(True)`` on the
``/api/kernels/{id}/channels`` socket, so a gateway's small replies wait on Nagle's algorithm plus the
client's delayed ACK: about 40 ms per message on Linux. With no-delay on, a ``kernel_info`` round trip
on loopback drops to a few milliseconds (docs/deploy.md has the figures measured here).

What it does, by the jupyter_server the gateway runs on:

* jupyter_server 2.x (Jupyter Kernel Gateway 3, plain ``jupyter server``): installs a subclass of
  ``ZMQChannelsWebsocketConnection`` through the public ``kernel_websocket_connection_class`` setting
  of ``KernelGatewayApp`` and ``ServerApp``; its ``connect()`` switches no-delay on first. No
  monkeypatching. If you already set your own connection class, subclass it the same way instead.
* jupyter_server 1.x (Jupyter Enterprise Gateway 3.3 pins 1.24): that setting does not exist, so this
  wraps ``jupyter_server.services.kernels.handlers.ZMQChannelsHandler.open``, which Enterprise
  Gateway's own channels handler inherits. This touches an internal: check it after upgrading.

If neither hook is found the gateway still starts, with a warning on stderr naming this file.
"""

from __future__ import annotations

import logging
from typing import Any

_log = logging.getLogger("nodelay_config")


def _jupyter_server_2_connection_class() -> type | None:
    """A websocket connection class that turns no-delay on, or None before jupyter_server 2."""
    try:
        from jupyter_server.services.kernels.connection.channels import (
            ZMQChannelsWebsocketConnection,
        )
    except ImportError:
        return None

    class NoDelayZMQChannelsWebsocketConnection(ZMQChannelsWebsocketConnection):  # type: ignore[misc]
        """ZMQChannelsWebsocketConnection that sends each message at once (TCP_NODELAY)."""

        def connect(self) -> Any:
            # The handler's open() calls connect() first thing, once the websocket is established,
            # which is when tornado allows set_nodelay().
            self.websocket_handler.set_nodelay(True)
            return super().connect()

    return NoDelayZMQChannelsWebsocketConnection


def _patch_jupyter_server_1_handler() -> bool:
    """Wrap jupyter_server 1.x's ZMQChannelsHandler.open to turn no-delay on; True if done."""
    try:
        from jupyter_server.services.kernels.handlers import ZMQChannelsHandler
    except ImportError:
        return False
    original_open = ZMQChannelsHandler.open
    if getattr(original_open, "_sets_nodelay", False):  # the file was loaded twice
        return True

    def open_with_nodelay(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.set_nodelay(True)
        return original_open(self, *args, **kwargs)

    open_with_nodelay._sets_nodelay = True  # type: ignore[attr-defined]
    ZMQChannelsHandler.open = open_with_nodelay
    return True


def apply(config: Any) -> str:
    """Turn TCP_NODELAY on for the kernel websocket; returns how, or "" if no hook was found."""
    connection_class = _jupyter_server_2_connection_class()
    if connection_class is not None:
        config.KernelGatewayApp.kernel_websocket_connection_class = connection_class
        config.ServerApp.kernel_websocket_connection_class = connection_class
        return "kernel_websocket_connection_class"
    if _patch_jupyter_server_1_handler():
        return "ZMQChannelsHandler.open"
    _log.warning(
        "nodelay_config.py: found no kernel websocket handler to set TCP_NODELAY on in this "
        "jupyter_server; the gateway runs, but each message may wait ~40 ms. Check the file "
        "against the installed jupyter_server version."
    )
    return ""


# traitlets runs this file with get_config() in scope; importing it (tests) skips this part.
if "get_config" in globals():
    apply(get_config())  # type: ignore[name-defined]  # noqa: F821
