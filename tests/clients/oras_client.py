#!/usr/bin/env python3
"""One oras-py (PyPI `oras`) action, for regtap's client tests.

    oras_client.py push         REGISTRY REPOSITORY:TAG DIR   # every file of DIR, each blob in one PUT
    oras_client.py push-chunked REGISTRY REPOSITORY:TAG DIR   # the same, blobs in PATCH chunks of 16 KiB
    oras_client.py pull         REGISTRY REPOSITORY:TAG DIR   # the files into DIR

The user and password come from REGTAP_USER and REGTAP_PASSWORD, sent as
Basic credentials (REGISTRY must be a Basic-auth registry: oras-py 0.2.43
keeps the first Bearer token it gets for every later request, so against a
token-auth registry a push fails once the pull-only token of its first HEAD
is sent with the upload POST). requests takes the proxy from HTTPS_PROXY and
the CA bundle from REQUESTS_CA_BUNDLE.
"""

import os
import sys

import oras.client

CHUNK_SIZE = 16 * 1024


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[1] not in ("push", "push-chunked", "pull"):
        print(__doc__, file=sys.stderr)
        return 2
    action, registry, reference, directory = sys.argv[1:]
    client = oras.client.OrasClient(
        hostname=registry, tls_verify=os.environ["REQUESTS_CA_BUNDLE"], auth_backend="basic"
    )
    client.login(
        username=os.environ["REGTAP_USER"],
        password=os.environ["REGTAP_PASSWORD"],
        hostname=registry,
        config_path=os.path.join(os.environ["HOME"], "oras-config.json"),
    )
    target = f"{registry}/{reference}"
    if action == "pull":
        for path in client.pull(target=target, outdir=directory):
            print(path)
        return 0
    # oras-py wants the files below the working directory.
    os.chdir(directory)
    files = sorted(os.listdir("."))
    response = client.push(
        target=target,
        files=files,
        do_chunked=action == "push-chunked",
        chunk_size=CHUNK_SIZE,
    )
    print(response.status_code)
    return 0 if response.status_code == 201 else 1


if __name__ == "__main__":
    sys.exit(main())
