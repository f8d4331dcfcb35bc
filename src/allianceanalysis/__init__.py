"""allianceanalysis: reproducible process-outcome analytics for psychotherapy data.

Modules, one per concept: :mod:`~allianceanalysis.instruments` (registry of scales),
:mod:`~allianceanalysis.io` (read, map, validate session data),
:mod:`~allianceanalysis.simulate` (studies with known truth),
:mod:`~allianceanalysis.config` (workflow configuration).
"""

import logging
from importlib.metadata import version

logging.getLogger("allianceanalysis").addHandler(logging.NullHandler())

__version__ = version("allianceanalysis")
__all__ = ["__version__"]
