"""The test runner: starts the real relay for the whole run, stops it after."""

import os
import shutil
import threading

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
        # Every thread the package or the tests started has an owner that ends it.
        import relay_django
        from asgiref.sync import async_to_sync
        from channels.layers import channel_layers

        relay_django._reset()
        for layer in list(channel_layers.backends.values()):
            async_to_sync(layer.close)()
        relayproc.stop()
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if left:
            raise RuntimeError("threads left running after the tests: %s" % left)
        shutil.rmtree(settings.BASE_TMP, ignore_errors=True)
        super().teardown_test_environment(**kwargs)
