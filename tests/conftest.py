import os

from hypothesis import settings

# CI runs the same generated cases every time (derandomized); locally each run
# explores new ones. `HYPOTHESIS_PROFILE=explore` forces exploration anywhere.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))
