"""Channel adapters: Meta's webhooks in, Graph API requests out.

``base`` holds the adapter contract and the registry; ``messenger``, ``instagram`` and
``whatsapp`` are the adapters (each exposes ``ADAPTER``, an ``adapter.ModuleAdapter`` of its
functions); ``events`` and ``outbound`` are the channel-independent values they produce and
consume; ``graph`` is the shared HTTP and parsing plumbing; ``signature`` checks ``X-Hub-Signature-256``. Import submodules directly: this package
imports nothing, so loading one adapter never loads the registry (which imports them all).
"""

__all__ = [
    "adapter",
    "base",
    "events",
    "graph",
    "instagram",
    "messaging",
    "messaging_render",
    "messenger",
    "outbound",
    "signature",
    "whatsapp",
    "whatsapp_render",
]
