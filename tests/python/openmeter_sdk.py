"""The real OpenMeter and CloudEvents Python SDKs against a running CompanyOS (CONTRACT §11).

Run by `crates/companyos/tests/it/openmeter_sdk.rs` with the server's address and tokens in the
environment; writes the files `examples/verify.rs` checks into OUT_DIR. Any failed check raises.
"""

import datetime
import decimal
import hashlib
import json
import os
import urllib.error
import urllib.request

from cloudevents.conversion import to_json, to_structured
from cloudevents.http import CloudEvent
from openmeter import Client

URL = os.environ["COMPANYOS_URL"]
ADMIN = os.environ["ADMIN_TOKEN"]
BILLING = os.environ["BILLING_TOKEN"]
INGEST = os.environ["INGEST_TOKEN"]
TENANT = os.environ["TENANT"]
OUT_DIR = os.environ["OUT_DIR"]
SOURCE = "sdk-test"


def http(method, path, token, body=None, headers=None):
    """One request; returns (status, body bytes, headers)."""
    request = urllib.request.Request(URL + path, data=body, method=method)
    request.add_header("Authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def usage_event_id(event_id, slug):
    digest = hashlib.sha256(f"{SOURCE}\n{event_id}\n{slug}".encode()).hexdigest()
    return "ce-" + digest[:40]


def create_meters():
    for meter in [
        {"slug": "tokens", "eventType": "prompt", "aggregation": "SUM",
         "valueProperty": "$.tokens", "groupBy": {"model": "$.model"}},
        {"slug": "prompts", "eventType": "prompt", "aggregation": "COUNT"},
    ]:
        status, body, _ = http("POST", "/api/v1/meters", BILLING, json.dumps(meter).encode(),
                               {"Content-Type": "application/json"})
        expect(status == 201, f"create meter: {status} {body!r}")


def send_with_cloudevents_sdk(base):
    """Structured mode (one event) and a batch of to_json events."""
    first = CloudEvent({"type": "prompt", "source": SOURCE, "subject": TENANT, "id": "s-1",
                        "time": base.isoformat()}, {"tokens": 10, "model": "gpt"})
    headers, body = to_structured(first)
    status, answer, _ = http("POST", "/api/v1/events", INGEST, body, headers)
    expect(status == 204, f"structured: {status} {answer!r}")
    batch = [
        CloudEvent({"type": "prompt", "source": SOURCE, "subject": TENANT, "id": f"b-{i}",
                    "time": (base + datetime.timedelta(minutes=i)).isoformat()},
                   {"tokens": f"{i}.25", "model": "claude" if i % 2 else "gpt"})
        for i in range(1, 4)
    ]
    body = b"[" + b",".join(to_json(event) for event in batch) + b"]"
    batch_headers = {"Content-Type": "application/cloudevents-batch+json"}
    status, answer, _ = http("POST", "/api/v1/events", INGEST, body, batch_headers)
    expect(status == 204, f"batch: {status} {answer!r}")
    return body, batch_headers


def send_with_openmeter_sdk(base):
    client = Client(endpoint=URL, token=INGEST)
    events = [
        {"specversion": "1.0", "type": "prompt", "source": SOURCE, "subject": TENANT,
         "id": f"o-{i}", "time": (base + datetime.timedelta(minutes=10 + i)).isoformat(),
         "data": {"tokens": 100 * i, "model": "gpt"}}
        for i in range(1, 3)
    ]
    client.events.ingest_events(events)
    client.events.ingest_events(events)  # a resend changes nothing
    # application/json with an array (the SDK sends a plain dict only as its Event model).
    client.events.ingest_events_json([events[0]])


def query(slug, **kwargs):
    client = Client(endpoint=URL, token=ADMIN)
    return client.meters.query_json(slug, **kwargs)


def total(result):
    return sum(decimal.Decimal(str(row.value)) for row in result.data)


def check_queries(day_start, day_end):
    # 10 + 1.25 + 2.25 + 3.25 + 100 + 200 tokens, in six events.
    daily = query("tokens", from_parameter=day_start, to=day_end, window_size="DAY",
                  subject=[TENANT], group_by=["model"])
    expect(total(daily) == decimal.Decimal("316.75"), f"tokens: {daily}")
    by_model = {row.group_by["model"]: decimal.Decimal(str(row.value)) for row in daily.data}
    expect(by_model == {"gpt": decimal.Decimal("312.25"), "claude": decimal.Decimal("4.5")},
           f"groups: {by_model}")
    expect(all(row.subject == TENANT for row in daily.data), f"subject: {daily}")
    prompts = query("prompts", from_parameter=day_start, to=day_end, subject=[TENANT])
    expect(total(prompts) == 6, f"prompts: {prompts}")
    # A range that is not whole days reads the payloads: the same answer.
    scanned = query("tokens", from_parameter=day_start + datetime.timedelta(seconds=1),
                    to=day_end - datetime.timedelta(seconds=1), subject=[TENANT])
    expect(total(scanned) == decimal.Decimal("316.75"), f"scanned: {scanned}")
    status, csv, _ = http("GET", f"/api/v1/meters/tokens/query?subject={TENANT}&groupBy=model",
                          ADMIN, headers={"Accept": "text/csv"})
    expect(status == 200 and csv.decode().startswith("window_start,window_end,subject,model,value"),
           f"csv: {status} {csv!r}")
    return total(daily)


def write_verification_files(base):
    """What a tenant needs to prove its event with examples/verify.rs."""
    event_id = usage_event_id("s-1", "tokens")
    status, proof, _ = http("GET", f"/v1/tenants/{TENANT}/ledger/proof?event_id={event_id}", ADMIN)
    expect(status == 200, f"proof: {status} {proof!r}")
    status, key, _ = http("GET", "/v1/ledger/verifier-key", ADMIN)
    expect(status == 200, f"verifier key: {status}")
    # The usage event as CONTRACT §11 maps it (timestamps in UTC with microseconds).
    event = {
        "event_id": event_id, "tenant_id": TENANT, "service": "cloudevents",
        "metric": "tokens", "quantity": 10, "unit": "unit",
        "timestamp": base.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request_id": "s-1", "attributes": {"om.subject": TENANT, "model": "gpt"},
    }
    for name, content in [("proof.json", proof), ("key.txt", key),
                          ("event.json", json.dumps(event).encode())]:
        with open(os.path.join(OUT_DIR, name), "wb") as file:
            file.write(content)


def main():
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    base = now - datetime.timedelta(hours=1)
    day_start = (base - datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0)
    day_end = (now + datetime.timedelta(days=2)).replace(hour=0, minute=0, second=0)
    create_meters()
    batch, headers = send_with_cloudevents_sdk(base)
    send_with_openmeter_sdk(base)
    before = check_queries(day_start, day_end)
    status, answer, _ = http("POST", "/api/v1/events", INGEST, batch, headers)
    expect(status == 204, f"resent batch: {status} {answer!r}")
    expect(check_queries(day_start, day_end) == before, "a resent batch changed the usage")
    write_verification_files(base)
    print("openmeter sdk checks passed")


if __name__ == "__main__":
    main()
