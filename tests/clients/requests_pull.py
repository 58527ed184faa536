#!/usr/bin/env python3
"""A pull written directly with requests, as a script would do it.

    requests_pull.py REGISTRY REPOSITORY TAG DIR

GET the manifest; on a 401 Bearer challenge, get a token from the realm with
Basic credentials (REGTAP_USER, REGTAP_PASSWORD) and retry; then GET the
config and every layer by digest into DIR, checking each against its digest.
requests takes the proxy from HTTPS_PROXY and the CA bundle from
REQUESTS_CA_BUNDLE.
"""

import hashlib
import os
import re
import sys

import requests

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def bearer_token(session, challenge, repository):
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    response = session.get(
        params["realm"],
        params={"service": params.get("service", ""), "scope": f"repository:{repository}:pull"},
        auth=(os.environ["REGTAP_USER"], os.environ["REGTAP_PASSWORD"]),
    )
    response.raise_for_status()
    body = response.json()
    return body.get("token") or body["access_token"]


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    registry, repository, tag, directory = sys.argv[1:]
    base = f"https://{registry}/v2/{repository}"
    session = requests.Session()
    session.headers["Accept"] = MANIFEST_TYPES
    manifest = session.get(f"{base}/manifests/{tag}")
    if manifest.status_code == 401:
        challenge = manifest.headers["WWW-Authenticate"]
        session.headers["Authorization"] = "Bearer " + bearer_token(session, challenge, repository)
        manifest = session.get(f"{base}/manifests/{tag}")
    manifest.raise_for_status()
    body = manifest.json()
    for descriptor in [body["config"], *body["layers"]]:
        digest = descriptor["digest"]
        blob = session.get(f"{base}/blobs/{digest}")
        blob.raise_for_status()
        computed = "sha256:" + hashlib.sha256(blob.content).hexdigest()
        if computed != digest:
            print(f"{digest}: the bytes hash to {computed}", file=sys.stderr)
            return 1
        with open(os.path.join(directory, digest.replace(":", "-")), "wb") as out:
            out.write(blob.content)
        print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
