"""``ctxopt serve``: an OpenAI- and Anthropic-compatible proxy that optimises every request.

Install with ``pip install 'ctxopt[serve]'``. The core of ctxopt never imports this package.
"""

from ctxopt.serve.app import create_app
from ctxopt.serve.config import ServeConfig, hash_key, load_config
from ctxopt.serve.loopback import LoopbackProvider

__all__ = ["LoopbackProvider", "ServeConfig", "create_app", "hash_key", "load_config"]
