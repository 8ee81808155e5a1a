"""`python -m anomalyd.backtest EVENTS... --rules DIR ...`: the same as `anomalyd backtest`."""

import sys

from ..cli.backtest import main

sys.exit(main())
