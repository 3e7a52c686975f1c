"""Jupyter config for a kernel gateway: send kernel websocket frames without Nagle's delay.

Pass it to the gateway with `--config=deploy/gateway/nodelay_config.py` (Kernel Gateway 3 or Enterprise
Gateway 3). Neither gateway, nor jupyter_server under them, calls tornado's
`WebSocketHandler.set_nodelay(True)` on the kernel channels websocket, so each small message
waits for the client's delayed ACK: about 40 ms per request. This file wraps the handler's `open`
to switch `TCP_NODELAY` on for every kernel websocket, and logs one line per websocket saying so.

The handler is a jupyter_server internal: `KernelWebsocketHandler` in jupyter_server 2 (Kernel
Gateway 3), `ZMQChannelsHandler` in jupyter_server 1 (Enterprise Gateway 3). If neither exists the
gateway refuses to start with an ImportError naming them, rather than running slow unnoticed.
"""

import functools
import inspect

try:  # jupyter_server 2
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler as _Handler
except ImportError:  # jupyter_server 1
    from jupyter_server.services.kernels.handlers import ZMQChannelsHandler as _Handler

if not getattr(_Handler.open, "_sets_nodelay", False):
    _open = _Handler.open

    @functools.wraps(_open)
    async def _open_without_nagle(self, *args, **kwargs):
        self.set_nodelay(True)
        kernel_id = getattr(self, "kernel_id", None) or kwargs.get("kernel_id") or args[:1]
        self.log.info("TCP_NODELAY set on the websocket of kernel %s", kernel_id)
        result = _open(self, *args, **kwargs)
        if inspect.isawaitable(result):
            await result

    _open_without_nagle._sets_nodelay = True
    _Handler.open = _open_without_nagle
