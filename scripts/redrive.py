"""Redrives a function's dead-letter queue: each message parked there is handed to the
function again (an asynchronous invoke, as the bus does), then deleted from the queue.

  redrive.py --queue QUEUE_URL --function FUNCTION_NAME [--region R] [--dry-run]

The functions' DLQs hold two shapes (template.yaml, "routing"): the bus event itself, parked
by the EventBridge rule when it could not hand the event to Lambda, and Lambda's invocation
record (the event under `requestPayload`) when the function failed on it three times. Both
give back the same event, and every function is idempotent (messageIds, decision ids, timer
versions), so a redriven event that had partly gone through does nothing twice. A message
whose invoke fails stays in the queue for the next run.
"""

import argparse
import json


def event_of(body):
    """The event to hand to the function again, from a DLQ message body."""
    message = json.loads(body)
    if isinstance(message, dict) and "requestPayload" in message and "requestContext" in message:
        return message["requestPayload"]
    return message


def redrive(receive, invoke, delete, batch=10):
    """Moves every message `receive(batch)` gives to `invoke(event)`, deleting each once its
    invoke was taken, until `receive` gives None (the queue is empty); returns (redriven,
    failed)."""
    redriven = failed = 0
    while True:
        messages = receive(batch)
        if messages is None:
            return redriven, failed
        for m in messages:
            try:
                invoke(event_of(m["Body"]))
            except Exception as e:  # noqa: BLE001: left in the queue, reported
                failed += 1
                print(f"not redriven, left in the queue: {m['MessageId']}: {e}")
                continue
            delete(m["ReceiptHandle"])
            redriven += 1


def main():
    import boto3

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", required=True, help="the DLQ's URL")
    ap.add_argument("--function", required=True, help="the function's name or ARN")
    ap.add_argument("--region")
    ap.add_argument("--dry-run", action="store_true", help="print the events, invoke nothing")
    args = ap.parse_args()
    sqs, lam = boto3.client("sqs", region_name=args.region), boto3.client("lambda", region_name=args.region)
    seen = set()

    def receive(n):
        # A failed invoke's message comes back after the visibility timeout: once per run.
        # A batch of only those may still hide others, so the run ends on an empty queue.
        got = sqs.receive_message(QueueUrl=args.queue, MaxNumberOfMessages=n, WaitTimeSeconds=1,
                                  VisibilityTimeout=300).get("Messages", [])
        if not got:
            return None
        fresh = [m for m in got if m["MessageId"] not in seen]
        seen.update(m["MessageId"] for m in got)
        return fresh

    def invoke(event):
        if args.dry_run:
            print(json.dumps(event))
            raise RuntimeError("dry run")
        lam.invoke(FunctionName=args.function, InvocationType="Event", Payload=json.dumps(event).encode())

    def delete(handle):
        sqs.delete_message(QueueUrl=args.queue, ReceiptHandle=handle)

    redriven, failed = redrive(receive, invoke, delete)
    print(f"{redriven} redriven, {failed} left in the queue")


if __name__ == "__main__":
    main()
