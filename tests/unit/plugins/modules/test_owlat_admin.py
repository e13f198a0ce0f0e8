import json

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import owlat_admin
from ansible_collections.owlat.selfhost.plugins.module_utils._owlat import PASSWORD_HASH_RE

SECRET = "ab" * 32
PASSWORD = "correct horse battery staple"
READY_HASH = "00112233445566778899aabbccddeeff:" + "f5b22309b28fe412c82a4b2cab57498b8f8a42c849af16cb908974048f61c139" \
    "33421858db3a8f111430bdc493c7cef90f61f904061c77206e3820a2e8b11bc2"


@pytest.fixture
def convex(fake_convex):
    fake_convex.env["INSTANCE_SECRET"] = SECRET
    return fake_convex


def params(convex, **extra):
    base = dict(url=convex.url, instance_secret=SECRET, email="admin@example.com", name="Admin", timeout=10)
    base.update(extra)
    if "password_hash" not in base:
        base.setdefault("password", PASSWORD)
    return base


def test_creates_the_admin_then_reports_no_change(run_module, convex, visible_text):
    res = run_module(owlat_admin, params(convex))
    assert res["failed"] is False, res
    assert res["changed"] is True and res["created"] is True and res["user_id"] == "user1" and res["status"] == 201
    post = convex.posts()[0]
    assert post["path"] == "/seed/admin"
    assert post["headers"]["X-Instance-Secret"] == SECRET
    body = json.loads(post["body"])
    assert body["email"] == "admin@example.com" and body["name"] == "Admin"
    assert PASSWORD_HASH_RE.match(body["passwordHash"]) and len(body["passwordHash"]) == 161
    assert PASSWORD not in json.dumps(res) and SECRET not in json.dumps(res)

    again = run_module(owlat_admin, params(convex))
    assert again["failed"] is False
    assert again["changed"] is False and again["created"] is False and again["status"] == 409
    assert len(convex.users) == 1


def test_ready_hash_is_sent_as_is(run_module, convex):
    res = run_module(owlat_admin, params(convex, password_hash=READY_HASH))
    assert res["created"] is True
    assert convex.users[0]["passwordHash"] == READY_HASH


def test_malformed_ready_hash_fails_before_sending(run_module, convex):
    res = run_module(owlat_admin, params(convex, password_hash="00:11"))
    assert res["failed"] is True and "password_hash is not in Owlat's format" in res["msg"]
    assert convex.requests == []


def test_password_and_hash_are_mutually_exclusive_and_one_is_required(run_module, convex):
    res = run_module(owlat_admin, params(convex, password_hash=READY_HASH, password=PASSWORD))
    assert res["failed"] is True and "mutually exclusive" in res["msg"]
    base = params(convex)
    del base["password"]
    res = run_module(owlat_admin, base)
    assert res["failed"] is True and "one of the following is required" in res["msg"]
    # An explicit null (or empty) password is not a password either.
    res = run_module(owlat_admin, dict(base, password=None))
    assert res["failed"] is True and "one of password or password_hash must be set" in res["msg"]
    res = run_module(owlat_admin, dict(base, password=""))
    assert res["failed"] is True and "one of password or password_hash must be set" in res["msg"]
    assert convex.requests == []


def test_check_mode_sends_nothing(run_module, convex):
    res = run_module(owlat_admin, params(convex), check_mode=True)
    assert res["failed"] is False
    assert res["changed"] is False and res["created"] is False
    assert "check mode" in res["msg"]
    assert convex.requests == [] and convex.users == []


def test_wrong_or_unpushed_instance_secret_explains_the_order(run_module, convex):
    convex.env.clear()
    res = run_module(owlat_admin, params(convex))
    assert res["failed"] is True and res["status"] == 401
    assert "INSTANCE_SECRET is not set or does not match" in res["msg"]
    assert "push the Convex environment" in res["msg"]
    assert SECRET not in res["msg"]


def test_bad_request_shows_the_server_message(run_module, convex):
    res = run_module(owlat_admin, params(convex, email="not-an-address"))
    assert res["failed"] is True and res["status"] == 400
    assert res["msg"].endswith("was rejected (400): email must be an email address")


def test_functions_not_deployed(run_module, convex):
    convex.deployed = False
    res = run_module(owlat_admin, params(convex))
    assert res["failed"] is True and res["status"] == 404
    assert "HTTP actions not deployed yet (run the functions deploy first)" in res["msg"]


def test_unreachable(run_module, convex, closed_port):
    res = run_module(owlat_admin, params(convex, url="http://127.0.0.1:%d" % closed_port))
    assert res["failed"] is True
    assert res["msg"] == "POST http://127.0.0.1:%d/seed/admin: connection refused" % closed_port


def test_unexpected_status(run_module, fake_http):
    server = fake_http(lambda handler, method, path: (500, "boom", None))
    res = run_module(owlat_admin, dict(url=server.url, instance_secret=SECRET, email="a@example.com", name="A", password=PASSWORD))
    assert res["failed"] is True and "unexpected HTTP 500: boom" in res["msg"]
