"""moto's server answering one request at a time.

moto's DynamoDB transactions are not isolated from concurrent requests: a cancelled
`TransactWriteItems` (a condition failed) restores a snapshot of the whole table taken when it
began, undoing whatever other requests wrote meanwhile. DynamoDB itself isolates transactions
per item. Tests that run many conditional transactions at once (concurrency groups' slots) use
this server so that what they observe is our protocol, not that artefact. The server is moto's
own application; only werkzeug's `threaded` is off (and HTTP/1.0, so connections do not
monopolise it).

A second artefact is corrected: moto checks the 400 KB item limit on an update by adding the
attribute's new value to the size of the whole item *including the value it replaces*, so
`SET members = list_append(members, :m)` fails once the list passes about 200 KB. DynamoDB
limits the item as it is after the update; batches keep member lists up to 350 KB
(`MEMBER_BYTES_BUDGET`), so this server counts the item that way.

Usage: python tests/moto_serial.py PORT
"""

import sys

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import dynamo_type
from moto.dynamodb.models.utilities import bytesize
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

# moto's own threshold (DynamoDB's 400 KB, measured between 409 and 410 KB).
ITEM_LIMIT = 405000


def _size(value: object) -> int:
    if type(value) is dynamo_type.DynamoType:
        return value.size()
    return bytesize(str(value))


def _set_attribute(self: dict, key: str, value: object) -> None:
    """An attribute set on an item: the item's size afterwards, without the value replaced."""
    others = sum(_size(k) + _size(v) for k, v in self.items() if k != key)
    if others + bytesize(key) + _size(value) > ITEM_LIMIT:
        raise ItemSizeTooLarge
    dict.__setitem__(self, key, value)


dynamo_type.LimitedSizeDict.__setitem__ = _set_attribute


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False)


if __name__ == "__main__":
    main()
