"""Kernel isolation on the host side: what a sandboxed kernel may reach, and the pieces that
enforce it. Imports only `errors`, `config`, `text` and `procs` of ours, so `kernels` (which
launches sandboxed kernels) and `services` (which reports on them) can both use it.

- `allowlist`: `AllowList`, the parsed `--kernel-allow-host` patterns (pure);
- `egress`: `EgressProxy`, the HTTP CONNECT / plain-HTTP proxy on a unix socket that is a
  sandboxed kernel's only way out, and the `Refusal`s it records.
"""

from python_mcp_server.sandbox.allowlist import AllowList, Rule
from python_mcp_server.sandbox.egress import EgressProxy, Refusal

__all__ = ["AllowList", "EgressProxy", "Refusal", "Rule"]
