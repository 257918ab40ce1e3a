"""moto's server answering one request at a time.

moto's DynamoDB transactions are not isolated from concurrent requests: a cancelled
`TransactWriteItems` (a condition failed) restores a snapshot of the whole table taken when it
began, undoing whatever other requests wrote meanwhile. DynamoDB itself isolates transactions
per item. Tests that run many conditional transactions at once (concurrency groups' slots) use
this server so that what they observe is our protocol, not that artefact. The server is moto's
own application; only werkzeug's `threaded` is off (and HTTP/1.0, so connections do not
monopolise it).

Usage: python tests/moto_serial.py PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False)


if __name__ == "__main__":
    main()
