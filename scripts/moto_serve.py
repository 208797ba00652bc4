"""moto's server with DynamoDB made safe for many callers at once, for the fault runs
(scripts/fault_run.py), whose dozens of function environments write to one table together.

  .venv/bin/python scripts/moto_serve.py -H 127.0.0.1 -p 5000

Two things of moto's DynamoDB that real DynamoDB does not do, and that would show as nudge
losing data:
- TransactWriteItems backs up every table it touches whole (a deep copy per call, slower as
  the table grows) and restores that copy when the transaction is cancelled, which undoes
  every other caller's write made meanwhile;
- its backend is not thread-safe: a write during a copy or a scan fails with "dictionary
  changed size during iteration" (a 500).
Here every DynamoDB backend call holds one lock, and a transaction backs up only the items it
touches and puts back only those when it is cancelled.
"""

import copy
import functools
import sys
import threading

from moto.dynamodb import models
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)

LOCK = threading.RLock()
Backend = models.DynamoDBBackend


def key_of(backend, op_type, op):
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    """All or nothing, as DynamoDB does it: each action's condition checked and the action
    applied in turn; if any fails, the items touched so far get their old versions back."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    backups, seen, errors = [], set(), []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        key = key_of(self, op_type, op)
        ident = (op["TableName"], str(sorted(key.items())))
        if ident in seen:
            self._restore(backups)
            raise MultipleTransactionsException()
        seen.add(ident)
        current = self.get_item(op["TableName"], key)
        backups.append((op["TableName"], key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
        old = None
        try:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = models.get_filter_expression(condition, names, values)
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            if op_type == "Put":
                self.put_item(op["TableName"], op["Item"], condition_expression=condition,
                              expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(op["TableName"], key, condition_expression=condition,
                                 expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                 condition_expression=condition, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type != "ConditionCheck":
                raise ValueError("Unsupported transaction operation")
            errors.append((None, None, None))
        except MockValidationException:
            self._restore(backups)
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), old))
        except Exception as e:  # noqa: BLE001: reported in the cancellation, as moto does
            errors.append((type(e).__name__, str(e), old))
    if any(code is not None for code, _, _ in errors):
        self._restore(backups)
        raise TransactionCanceledException(errors)


def restore(self, backups):
    for table_name, key, attrs in reversed(backups):
        if attrs is None:
            self.delete_item(table_name, key)
        else:
            self.put_item(table_name, attrs)


def locked(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with LOCK:
            return method(*args, **kwargs)
    return call


Backend.transact_write_items = transact_write_items
Backend._restore = restore
for name in dir(Backend):
    if not name.startswith("_") and callable(getattr(Backend, name)) and name not in ("default_vpc_endpoint_service",):
        setattr(Backend, name, locked(getattr(Backend, name)))

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
