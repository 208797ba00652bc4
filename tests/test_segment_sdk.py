"""Unmodified Segment and RudderStack SDKs (segment-analytics-python, rudder-sdk-python from
PyPI) sending to `nudge serve`."""

import datetime
import email
import hashlib
import hmac
import json

import pytest
import segment.analytics as analytics

from serve_support import ROOT, Server, eventually

INBOX_SECRET = "sdk-inbox-secret"


def daytime_zone() -> str:
    """A fixed-offset zone where it is now about noon, so quiet hours never defer the mail."""
    hour = datetime.datetime.now(datetime.timezone.utc).hour
    offset = (12 - hour + 12) % 24 - 12  # -12..11 hours from UTC
    # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" + ("-" if offset > 0 else "+") + str(abs(offset)) if offset else "UTC"


@pytest.fixture()
def server():
    s = Server(ROOT / "examples" / "saas-onboarding", "--write-key", "wk_sdk",
               "--inbox-secret", INBOX_SECRET)
    yield s
    s.stop()


def test_segment_python_sdk_delivers_and_messages_come_out(server):
    errors = []
    analytics.write_key = "wk_sdk"
    analytics.host = server.base
    analytics.on_error = lambda e, batch: errors.append(e)
    analytics.sync_mode = False

    user = "sdk-user-1"
    analytics.identify(user, {"email": "sam@example.com", "first_name": "Sam",
                              "timezone": daytime_zone()})
    analytics.track(user, "Signed Up")
    analytics.track(user, "Button Clicked", {"label": "Connect Payment Method"})
    analytics.track(user, "Onboarding Completed")
    analytics.flush()
    assert errors == []

    # The congratulations email lands in the outbox.
    files = eventually(server.outbox)
    assert files, "no email: " + "".join(server.lines)
    msg = email.message_from_bytes(files[0].read_bytes())
    assert msg["To"] == "sam@example.com"
    assert "Sam" in msg["Subject"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The billing tip lands in the user's inbox.
    token = hmac.new(INBOX_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()

    def inbox():
        body = json.loads(server.get(f"/v1/users/{user}/inbox", {"X-User-Hash": token}))
        return body["items"]

    items = eventually(inbox)
    assert [i["title"] for i in items] == ["Billing tip"]


def test_segment_sdk_with_a_wrong_write_key_is_refused(server):
    from segment.analytics.request import APIError

    client = analytics.Client("wrong-key", host=server.base, max_retries=0, sync_mode=True)
    with pytest.raises(APIError) as err:
        client.track("sdk-user-2", "Signed Up")
    assert err.value.status == 401
    assert "unknown write key" in str(err.value)


def test_rudderstack_python_sdk_delivers_gzipped_batches(server):
    """RudderStack's SDK (rudder-sdk-python) posts gzip-compressed batches to /v1/batch."""
    from rudderstack.analytics import Client

    errors = []
    client = Client("wk_sdk", host=server.base, sync_mode=True, gzip=True, max_retries=0,
                    on_error=lambda e, batch: errors.append(e))
    user = "rudder-user-1"
    client.identify(user, {"email": "rio@example.com", "first_name": "Rio",
                           "timezone": daytime_zone()})
    client.track(user, "Signed Up")
    client.track(user, "Button Clicked", {"label": "Connect Payment Method"})
    client.flush()
    assert errors == []

    token = hmac.new(INBOX_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()

    def inbox():
        body = json.loads(server.get(f"/v1/users/{user}/inbox", {"X-User-Hash": token}))
        return body["items"]

    items = eventually(inbox)
    assert [i["title"] for i in items] == ["Billing tip"]
