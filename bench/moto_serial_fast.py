"""moto's server answering one request at a time (as tests/moto_serial.py), with two changes
for benchmarks that hold thousands of items, each of which measured moto instead of us:

- a `TransactWriteItems` no longer deep-copies every table it touches before it starts (so it
  can restore them if cancelled) — an O(table) copy per transaction that made a 10,000-upload
  burst quadratic. Requests are served one at a time here, so nothing else can change a table
  during a transaction: saving and restoring only the items the transaction names is the same
  rollback. Tables with a sort key keep moto's own snapshot.
- every `Query` sorts the whole table, and then its results, comparing moto's attribute
  wrappers (`DynamoType.__lt__`, a cast per comparison): 88% of moto's time in a burst with
  10,000 executions, ~4.5 s per tracker pass. Here both sorts use the attributes' plain values
  (strings as strings, numbers as decimals): the same order, a fraction of the time. And an
  index query with one hash-key value (every `Query` of ours) hands moto only the items
  holding that value, found with plain comparisons, instead of letting it test each item.

Usage: python bench/moto_serial_fast.py PORT
"""

import copy
import decimal
import sys

from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

_original = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        if table.range_key_attr is not None:
            return _original(self, transact_items)
        attrs = op.get("Key") or op.get("Item") or {}
        if table.hash_key_attr not in attrs:
            return _original(self, transact_items)
        key = DynamoType(attrs[table.hash_key_attr])
        existed = key in table.items
        saved.append((table, key, copy.deepcopy(table.items[key]) if existed else None, existed))
    deepcopy = copy.deepcopy
    copy.deepcopy = lambda x, memo=None: x if isinstance(x, Table) else deepcopy(x, memo)
    try:
        return _original(self, transact_items)
    except (TransactionCanceledException, Exception):
        for table, key, item, existed in reversed(saved):
            if existed:
                table.items[key] = item
            else:
                table.items.pop(key, None)
        raise
    finally:
        copy.deepcopy = deepcopy


DynamoDBBackend.transact_write_items = transact_write_items


def plain(value) -> tuple:
    """A sort key with the order moto gives a `DynamoType`: numbers by value, strings and
    binaries by their text."""
    if value is None:
        return (0, "")
    if value.type == "N":
        return (1, decimal.Decimal(value.value))
    if value.type in ("S", "B"):
        return (2, value.value)
    return (3, str(value.value))


def all_items(self):
    items = []
    for hash_set in self.items.values():
        if self.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    return sorted(items, key=lambda x: (plain(x.hash_key), plain(x.range_key)))


def sorted_items(self, hash_key_attrs, range_key_attrs, items):
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda x: tuple(plain(x.attrs[key]) for key in attrs))
    return items


_query = Table.query


def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
          projection_expressions, index_name=None, *rest, hash_key_conditions=None, **kwargs):
    """An index query with one hash-key condition reads only the items that hold that value
    (compared as plain values), as an index would, instead of testing every item of the
    table with moto's wrappers; moto's own query does the rest on them."""
    def run():
        return _query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                      projection_expressions, index_name, *rest, hash_key_conditions=hash_key_conditions, **kwargs)
    if not (index_name and hash_key_conditions and len(hash_key_conditions) == 1):
        return run()
    name, value = hash_key_conditions[0]
    # Unsorted: moto sorts an index query's items itself.
    items = [
        item for hash_set in self.items.values()
        for item in (hash_set.values() if self.range_key_attr else [hash_set])
        if (v := item.attrs.get(name)) is not None and v.type == value.type and v.value == value.value
    ]
    self.all_items = lambda: items
    try:
        return run()
    finally:
        del self.all_items


Table.all_items = all_items
Table.sorted_items = sorted_items
Table.query = query


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False)


if __name__ == "__main__":
    main()
