//! DynamoDB, EventBridge and SES v2 adapters of the nudge ports, and the Lambda handler edges.
