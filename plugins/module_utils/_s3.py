# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""A small S3 client for the storage check, standard library only: requests signed with AWS Signature Version 4
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html), path-style or
virtual-hosted addressing, the payload's SHA-256 always sent as ``x-amz-content-sha256`` (S3 wants it on every
signed request)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from ansible_collections.owlat.selfhost.plugins.module_utils._http import HttpError, request


def signing_key(secret_key, day, region, service="s3"):
    """kSigning of SigV4: HMAC chain over the date (YYYYMMDD), region, service and ``aws4_request``."""
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


class S3:
    def __init__(self, endpoint_url, region, access_key_id, secret_access_key, path_style=False, session_token="",
                 cafile=None, timeout=10.0):
        # No endpoint: AWS itself (its regional endpoint). The backend then leaves the endpoint to the AWS SDK
        # (S3_ENDPOINT_URL is optional: get-convex/convex-backend crates/aws_utils/src/lib.rs:20-23 at c51b14b).
        self.endpoint = (endpoint_url or "https://s3.%s.amazonaws.com" % region).rstrip("/")
        self.region, self.access_key_id, self.secret_access_key = region, access_key_id, secret_access_key
        self.path_style, self.session_token, self.timeout, self.cafile = path_style, session_token, timeout, cafile

    def _target(self, bucket, key):
        parts = urlsplit(self.endpoint)
        path_key = quote(key, safe="/-_.~")
        if self.path_style:
            host, path = parts.netloc, "%s/%s" % (parts.path, bucket) + ("/" + path_key if key else "")
        else:
            host, path = "%s.%s" % (bucket, parts.netloc), "%s/%s" % (parts.path, path_key)
        return "%s://%s%s" % (parts.scheme, host, path), host, path

    def request(self, method, bucket, key="", body=b"", now=None):
        """(HTTP status, body) of one signed request; a connection failure raises OSError."""
        url, host, path = self._target(bucket, key)
        now = now or datetime.now(timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, "", "".join("%s:%s\n" % (h, headers[h]) for h in sorted(headers)),
                               signed, payload_hash])
        scope = "%s/%s/s3/aws4_request" % (day, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(signing_key(self.secret_access_key, day, self.region), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.access_key_id, scope, signed, signature)
        try:
            response = request(url, method=method, headers=headers, body=body or None, timeout=self.timeout,
                               ca_path=self.cafile)
        except HttpError as exc:
            raise OSError(str(exc))
        return response.status, response.body
