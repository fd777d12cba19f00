"""``python -m msal_wsgi check [--ini FILE[#SECTION]]``: see :mod:`msal_wsgi.check`."""

import sys

from .check import main

sys.exit(main())
