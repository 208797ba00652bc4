"""What became of every decision of a fault run (scripts/fault_run.py), from what the services
hold (the delivery log and the inbox in the table, the mails moto's SES took, the webhooks
the run's receiver got), not from the functions' word."""

import email
import json
import urllib.request
from collections import Counter, defaultdict

# deliver's record of a mail whose answer was lost (crates/nudge-service/src/deliver/mod.rs).
MAIL_MAY_BE_OUT = "the mail may have been sent (the provider's answer was lost), so it is not sent again"


def scan(ddb, table, prefix):
    items = []
    for page in ddb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="begins_with(sk, :p)",
            ExpressionAttributeValues={":p": {"S": prefix}}):
        items += page["Items"]
    return items


def ses_messages(endpoint):
    """Decision id (hex) of each mail SES took, from its Message-ID."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=120) as reply:
        raw = json.load(reply).get("ses", {}).get("RawMessage", [])
    ids, dates = Counter(), defaultdict(list)
    for m in raw:
        data = m.get("raw_data") or m.get("raw_message") or ""
        msg = email.message_from_string(data if isinstance(data, str) else data.decode())
        d = (msg["Message-ID"] or "").strip("<>").split("@")[0]
        ids[d] += 1
        dates[d].append(msg["Date"])
    return ids, dates


def tally(ddb, table, endpoint, expected, hooks_by_id, trail, deliveries, identified_at):
    """The run's counts by kind of message, and what is wrong (empty: nothing lost, nothing
    twice). `expected`: user -> {trigger: decisions}; `trail` and `deliveries`: what the
    functions logged and how deliver was invoked, per decision id, shown for any that went
    wrong; `identified_at`: when evaluate first took each user's identify (run seconds)."""
    by_decision = {}
    for item in scan(ddb, table, "dlv#"):
        d = item["sk"]["S"].removeprefix("dlv#")
        by_decision[d] = (item["user_id"]["S"], item["trigger"]["S"], item["status"]["S"],
                          item.get("error", {}).get("S", ""), item.get("attempts", {}).get("N"))
    found = defaultdict(Counter)
    for user, trigger, *_ in by_decision.values():
        found[user][trigger] += 1
    lost = extra = 0
    missing = []
    for user, exp in expected.items():
        for trigger, n in exp.items():
            got = found[user][trigger]
            lost += max(0, n - got)
            extra += max(0, got - n)
            if got != n:
                timer = ddb.get_item(TableName=table, Key={"pk": {"S": f"u#{user}"}, "sk": {"S": "timer"}}).get("Item")
                missing.append({"user": user, "trigger": trigger, "expected": n, "found": got,
                                "timer": {k: list(v.values())[0] for k, v in (timer or {}).items()
                                          if k in ("due", "version", "claimed", "cancelled", "queued")}})
    extra += sum(sum(c.values()) for u, c in found.items() if u not in expected)
    statuses = Counter(f"{trig}: {status}" for _, trig, status, *_ in by_decision.values())
    mails, mail_dates = ses_messages(endpoint)
    email_decisions = {d: v for d, v in by_decision.items() if v[1] in ("welcome", "reminder")}
    mails_twice = sum(1 for d in email_decisions if mails[d] > 1)
    sent_without_mail = sum(1 for d, v in email_decisions.items() if v[2] == "sent" and mails[d] == 0)
    # A mail not sent is one of two kinds the design allows: an answer lost, so never
    # sent again ("may have been sent": it may or may not be in SES), or SES refusing it
    # for the last try. Anything else is a fault of nudge's.
    maybe = {d: v for d, v in email_decisions.items() if v[2] == "failed" and v[3].endswith(MAIL_MAY_BE_OUT)}
    refused = {d: v for d, v in email_decisions.items()
               if v[2] == "failed" and d not in maybe and v[3].startswith("SES SendEmail")}
    # A mail decided before the user's identify reached evaluate (their batches arrived out
    # of order) had no address to go to: the decision was right for what was known.
    before_address = {d: v for d, v in email_decisions.items()
                      if v[2] == "failed" and "no `email` trait" in v[3] and deliveries.get(d)
                      and identified_at.get(v[0], float("inf")) > min(i[0] for i in deliveries[d])}
    unexplained = {d: v for d, v in email_decisions.items()
                   if v[2] != "sent" and d not in maybe and d not in refused and d not in before_address}
    inbox = Counter(i["sk"]["S"].removeprefix("inbox#") for i in scan(ddb, table, "inbox#"))
    tips = {d for d, v in by_decision.items() if v[1] == "tip"}
    plan_hooks = {d for d, v in by_decision.items() if v[1] == "plan-hook"}
    counted = {
        "decisions": {"expected": sum(sum(e.values()) for e in expected.values()), "found": len(by_decision),
                      "lost": lost, "extra": extra, "by_outcome": dict(sorted(statuses.items())),
                      "differences": missing[:10]},
        "mails": {"decisions": len(email_decisions), "taken_by_ses": sum(mails[d] for d in email_decisions),
                  "sent_once": sum(1 for d, v in email_decisions.items() if v[2] == "sent" and mails[d] == 1),
                  "may_have_been_sent": {"in_ses": sum(1 for d in maybe if mails[d]),
                                         "not_in_ses": sum(1 for d in maybe if not mails[d])},
                  "refused_at_the_last_try": len(refused),
                  "decided_before_the_address_arrived": len(before_address),
                  "unexplained": [[d, *v] for d, v in unexplained.items()][:5],
                  "twice": mails_twice, "sent_but_not_in_ses": sent_without_mail,
                  "twice_detail": [[d, mail_dates[d], *v, trail.get(d), deliveries.get(d)]
                                   for d, v in email_decisions.items()
                                   if mails[d] > 1][:5],
                  "unexplained_detail": [[d, *v, trail.get(d), deliveries.get(d)]
                                         for d, v in unexplained.items()][:3]},
        "inbox": {"decisions": len(tips), "items": sum(1 for d in tips if inbox[d]),
                  "missing": sum(1 for d in tips if not inbox[d] and by_decision[d][2] == "sent")},
        "webhooks": {"decisions": len(plan_hooks), "received": sum(hooks_by_id[d] for d in plan_hooks),
                     "distinct": sum(1 for d in plan_hooks if hooks_by_id[d]),
                     "twice": sum(1 for d in plan_hooks if hooks_by_id[d] > 1),
                     "twice_detail": [[d, *by_decision[d], trail.get(d), deliveries.get(d)]
                                      for d in plan_hooks if hooks_by_id[d] > 1][:5]},
    }
    wrong = [name for name, failed in [
        ("decisions lost", lost), ("decisions made twice", extra), ("mails twice", mails_twice),
        ("mails recorded sent but not in SES", sent_without_mail), ("mails not sent, unexplained", unexplained),
        ("inbox items missing", counted["inbox"]["missing"] or counted["inbox"]["items"] != len(tips)),
        ("webhooks twice", counted["webhooks"]["twice"]),
        ("webhooks not received", counted["webhooks"]["distinct"] != len(plan_hooks)),
        ("sends left in progress", any(s.endswith(": sending") for s in statuses)),
    ] if failed]
    return counted, wrong
