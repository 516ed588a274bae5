"""graphite-web settings for the oracle (GRAPHITE_SETTINGS_MODULE).

graphite.settings imports this module instead of graphite.local_settings
(nothing is written into site-packages). Storage and logs go to a temp
directory; the only finder serves `tests.query.datasource` data.
"""

import atexit as _atexit
import os as _os
import shutil as _shutil
import tempfile as _tempfile

_TMP = _tempfile.mkdtemp(prefix="cyclone-graphite-oracle-")
_atexit.register(_shutil.rmtree, _TMP, True)

STORAGE_DIR = _TMP
LOG_DIR = _os.path.join(_TMP, "log")
_os.makedirs(LOG_DIR, exist_ok=True)
SECRET_KEY = "cyclone-query-tests"
STORAGE_FINDERS = ("tests.query.graphite_finder.MemoryFinder",)
TAGDB = "graphite.tags.base.DummyTagDB"
USE_WORKER_POOL = False
TIME_ZONE = "UTC"
LOG_INFO_PERFORMANCE = False
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
