#!/usr/bin/python3
"""Run relay_django's tests: /usr/bin/python3 runtests.py [test labels]

Builds relay (go build ./app from the repository root, or uses $RELAY_BIN),
starts it on a free port, and runs the tests against it."""

import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    os.chdir(here)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings
    from django.test.utils import get_runner

    django.setup()
    runner = get_runner(settings)(verbosity=int(os.environ.get("VERBOSITY", "1")))
    sys.exit(bool(runner.run_tests(sys.argv[1:] or ["tests"])))
