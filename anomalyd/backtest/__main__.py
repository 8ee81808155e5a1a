"""`python -m anomalyd.backtest backtest EVENTS... --rules DIR ...`"""

import sys

from .cli import main

sys.exit(main())
