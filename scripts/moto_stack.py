"""The stack the functions need, on a moto server: the table (keys, the sparse `due` index,
TTL, a stream with old images, as template.yaml declares it), the bus with the template's
routing (each consuming function's rule targets an SQS queue: moto cannot invoke Lambda),
and a verified SES sender.

  .venv/bin/python scripts/moto_stack.py [--endpoint URL] [--name NAME] [--sender ADDRESS]

creates table and bus NAME (default nudge-dev) and queues NAME-to-{evaluate,schedule-delay,
deliver} on $AWS_ENDPOINT_URL (default http://127.0.0.1:5000) and prints the queue URLs.
"""

import argparse
import json
import os

import boto3

# template.yaml's EvaluateRule, ScheduleDelayRule and DeliverRule (packed kinds included:
# several timers fired by one sweep or queue batch travel as one "Timers Fired").
ROUTES = {
    "evaluate": ["Events Accepted", "Timer Fired", "Timers Fired"],
    "schedule-delay": ["Delay Requested", "Delay Cancelled", "Timers Changed"],
    "deliver": ["Message Requested"],
}


def client(endpoint, service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def set_up(endpoint, name, sender, stream=True, dynamodb=None):
    """Creates the stack; returns the SQS client and each consuming function's queue URL.
    Without `stream` the table has none (a harness that plays the stream itself); `dynamodb`
    is another server's endpoint for the table."""
    ddb = client(dynamodb or endpoint, "dynamodb")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in [("pk", "S"), ("sk", "S"), ("gsi1pk", "S"), ("gsi1sk", "N")]],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "due",
            "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                          {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": stream, **({"StreamViewType": "OLD_IMAGE"} if stream else {})},
    )
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    events, sqs = client(endpoint, "events"), client(endpoint, "sqs")
    events.create_event_bus(Name=name)
    queues = {}
    for fn, types in ROUTES.items():
        url = sqs.create_queue(QueueName=f"{name}-to-{fn}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"{name}-to-{fn}", EventBusName=name,
                        EventPattern=json.dumps({"source": ["nudge"], "detail-type": types}))
        events.put_targets(Rule=f"{name}-to-{fn}", EventBusName=name, Targets=[{"Id": fn, "Arn": arn}])
        queues[fn] = url
    client(endpoint, "sesv2").create_email_identity(EmailIdentity=sender)
    return sqs, queues


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"))
    ap.add_argument("--name", default="nudge-dev")
    ap.add_argument("--sender", default=os.environ.get("NUDGE_SENDER", "nudge@example.com"))
    args = ap.parse_args()
    _, queues = set_up(args.endpoint, args.name, args.sender)
    for fn, url in queues.items():
        print(f"{fn:15} {url}")


if __name__ == "__main__":
    main()
