"""modelfleet weights fetcher: pinned, verified, atomic model downloads into a shared cache.

``python -m fetcher SOURCE DEST_ROOT``; see ``docker/fetcher/README.md``.
"""

from fetcher.paths import model_dir
from fetcher.source import parse_source
from fetcher.version import __version__

__all__ = ["__version__", "model_dir", "parse_source"]
