#!/usr/bin/env python3
"""One python-dxf action, for regtap's client tests.

    dxf_client.py push REGISTRY REPOSITORY TAG FILE...   # push-blob each file, then set-alias TAG
    dxf_client.py pull REGISTRY REPOSITORY TAG DIR       # the blobs of TAG into DIR, named by digest

The user and password come from REGTAP_USER and REGTAP_PASSWORD, the CA
bundle from REQUESTS_CA_BUNDLE; requests takes the proxy from HTTPS_PROXY.
"""

import os
import sys

from dxf import DXF


def main() -> int:
    if len(sys.argv) < 6 or sys.argv[1] not in ("push", "pull"):
        print(__doc__, file=sys.stderr)
        return 2
    action, registry, repository, tag = sys.argv[1:5]

    def auth(dxf, response):
        dxf.authenticate(
            os.environ["REGTAP_USER"], os.environ["REGTAP_PASSWORD"], response=response
        )

    dxf = DXF(registry, repository, auth, tlsverify=os.environ["REQUESTS_CA_BUNDLE"])
    if action == "push":
        digests = [dxf.push_blob(path) for path in sys.argv[5:]]
        dxf.set_alias(tag, *digests)
        for digest in digests:
            print(digest)
        return 0
    directory = sys.argv[5]
    for digest in dxf.get_alias(tag):
        with open(os.path.join(directory, digest.replace(":", "-")), "wb") as out:
            # pull_blob checks the bytes against the digest as they arrive.
            for chunk in dxf.pull_blob(digest):
                out.write(chunk)
        print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
