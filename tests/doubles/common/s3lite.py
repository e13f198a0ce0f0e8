# TEST DOUBLE support code shared by the owlat.selfhost contract doubles (tests/doubles): not a real product.
"""A very small S3 client (AWS Signature Version 4, standard library only).

Enough for the doubles and their tests: put/get/delete an object, list keys, make/remove a bucket. Path-style
or virtual-hosted addressing; HTTPS trusts the default store (SSL_CERT_FILE picks another CA file).
Every request carries `x-amz-content-sha256` (radosgw refuses a signed request without it).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit


class S3Error(Exception):
    def __init__(self, status: int, method: str, url: str, body: bytes):
        super().__init__(f"S3 {method} {url} -> HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        self.status = status


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class S3Client:
    def __init__(self, endpoint: str | None, region: str, access_key: str, secret_key: str,
                 path_style: bool = False, session_token: str | None = None, timeout: float = 30):
        # No endpoint: AWS itself (the regional endpoint).
        self.endpoint = (endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        self.region, self.access_key, self.secret_key = region, access_key, secret_key
        self.path_style, self.session_token, self.timeout = path_style, session_token, timeout

    def _url(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(url without query, host header, canonical path)."""
        parts = urlsplit(self.endpoint)
        ekey = quote(key, safe="/-_.~")
        if self.path_style or not bucket:
            host = parts.netloc
            path = f"{parts.path}/{bucket}" + (f"/{ekey}" if key else "") if bucket else (parts.path or "/")
        else:
            host = f"{bucket}.{parts.netloc}"
            path = f"{parts.path}/{ekey}"
        return f"{parts.scheme}://{host}{path}", host, path

    def request(self, method: str, bucket: str, key: str = "", query: dict | None = None,
                body: bytes = b"", ok=(200, 204)) -> tuple[int, bytes]:
        url, host, path = self._url(bucket, key)
        now = datetime.now(timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        cquery = "&".join(f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}"
                          for k, v in sorted((query or {}).items()))
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, cquery,
                               "".join(f"{h}:{headers[h]}\n" for h in sorted(headers)), signed, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key_bytes = _hmac(_hmac(_hmac(_hmac(("AWS4" + self.secret_key).encode(), day), self.region), "s3"),
                          "aws4_request")
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        req = urllib.request.Request(url + (f"?{cquery}" if cquery else ""), data=body if method == "PUT" else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        if status not in ok:
            raise S3Error(status, method, url, data)
        return status, data

    # -- objects --------------------------------------------------------------------------------------
    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self.request("PUT", bucket, key, body=data)

    def get_object(self, bucket: str, key: str) -> bytes | None:
        status, data = self.request("GET", bucket, key, ok=(200, 404))
        return data if status == 200 else None

    def delete_object(self, bucket: str, key: str) -> None:
        self.request("DELETE", bucket, key, ok=(200, 204, 404))

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            _, data = self.request("GET", bucket, query=query)
            root = ET.fromstring(data)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            keys += [c.findtext(f"{ns}Key") for c in root.findall(f"{ns}Contents")]
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                return keys

    # -- buckets (tests) --------------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        self.request("PUT", bucket)

    def delete_bucket(self, bucket: str, empty: bool = True) -> None:
        if empty:
            for key in self.list_keys(bucket):
                self.delete_object(bucket, key)
        self.request("DELETE", bucket, ok=(200, 204, 404))
