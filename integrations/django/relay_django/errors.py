"""The errors relay_django raises."""


class RelayError(Exception):
    """relay refused a request, or could not be reached.

    ``status`` is the HTTP status (``None`` when relay never answered),
    ``code`` relay's ``error`` code (``"forbidden"``, ``"store_unavailable"``,
    ...) and ``message`` what relay said to do next. ``attempts`` is how many
    requests were made: a 4xx is never retried.
    """

    def __init__(self, status, code, message, attempts=1):
        self.status = status
        self.code = code
        self.message = message
        self.attempts = attempts
        if status is None:
            text = "relay unreachable after %d attempt%s: %s" % (attempts, "" if attempts == 1 else "s", message)
        else:
            text = "relay answered %d %s: %s" % (status, code or "", message)
            if attempts > 1:
                text += " (after %d attempts)" % attempts
        super().__init__(text)


class ConsumersNotSupported(NotImplementedError):
    """Raised by the channel layer's send/receive/new_channel."""
