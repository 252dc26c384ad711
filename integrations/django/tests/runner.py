"""The test runner: starts the real relay for the whole run, stops it after."""

import os
import shutil

from django.conf import settings
from django.test.runner import DiscoverRunner

from . import relayproc


class RelayRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        relayproc.start(settings.SECRET_KEY)
        os.environ["RELAY_URL"] = relayproc.RELAY.url
        os.environ["RELAY_PUBLISH_KEY"] = relayproc.RELAY.publish_key

    def teardown_test_environment(self, **kwargs):
        relayproc.stop()
        shutil.rmtree(settings.BASE_TMP, ignore_errors=True)
        super().teardown_test_environment(**kwargs)
