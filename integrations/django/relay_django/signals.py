from django.dispatch import Signal

# Sent by relay_django.views.webhook for each verified client action relay
# forwards. Keyword arguments: ``action`` (the payload's "type", e.g.
# "mark_read"), ``user_id`` (a string) and ``payload`` (the whole JSON object).
# A receiver that raises makes the view answer 500, and relay retries.
client_action = Signal()
