"""``python -m cli``: the same as the ``worklets`` command."""

import sys

from cli.main import main

sys.exit(main())
