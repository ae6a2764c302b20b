#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/ from the test data:
queries for the handler and the message parser, zone files, Route53 values, and snapshot
bodies made from the recorded Route53 listings. Run again when the test data changes."""
import json, os, struct, glob, hashlib

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "tests", "data")
out = os.path.join(here, "seeds")

def put(target, content):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    name = hashlib.sha1(content).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)

def wire(name):
    b = b""
    for label in name.rstrip(".").split("."):
        if label:
            b += bytes([len(label)]) + label.encode()
    return b + b"\0"

def query(name, qtype, opcode=0, edns=True, do=False, extra=b"", ancount=0, nscount=0):
    flags = (opcode << 11) | 0x0100
    ar = 1 if edns else 0
    m = struct.pack(">HHHHHH", 0x1234, flags, 1, ancount, nscount, ar)
    m += wire(name) + struct.pack(">HH", qtype, 1) + extra
    if edns:
        m += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000 if do else 0, 0)
    return m

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "SRV": 33, "NAPTR": 35, "DS": 43, "DNSKEY": 48, "SVCB": 64, "HTTPS": 65, "CAA": 257,
         "ANY": 255, "AXFR": 252, "IXFR": 251, "SPF": 99}

for name, t in [("www.example.com.", "A"), ("example.com.", "SOA"), ("alias.example.com.", "A"),
                ("x.wild.ent.example.com.", "A"), ("x.dn.example.com.", "A"), ("host.sub.example.com.", "A"),
                ("nx.example.net.", "AAAA"), ("big.example.com.", "A"), ("signed.example.", "DNSKEY"),
                ("www.signed.example.", "A"), ("example.com.", "ANY"), ("example.com.", "AXFR")]:
    put("answer", query(name, TYPES[t]))
    put("answer", query(name, TYPES[t], edns=False))
    put("answer", query(name, TYPES[t], do=True))
    put("message", query(name, TYPES[t]))
# NOTIFY with the SOA, UPDATE adding a record, IXFR with the client's SOA.
soa = wire("ns1.example.com.") + wire("hostmaster.example.com.") + struct.pack(">IIIII", 1, 2, 3, 4, 5)
rr_soa = b"\xc0\x0c" + struct.pack(">HHIH", 6, 1, 3600, len(soa)) + soa
put("message", query("example.com.", 6, opcode=4, edns=False, extra=rr_soa, ancount=1))
add = wire("new.example.com.") + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 9])
put("message", query("example.com.", 6, opcode=5, edns=False, extra=add, nscount=1))
put("answer", query("example.com.", 251, edns=False, extra=rr_soa, nscount=1))

for path in sorted(glob.glob(os.path.join(data, "zones", "*.zone"))):
    text = open(path, encoding="utf-8").read()
    origin = os.path.basename(path)[: -len(".zone")] + "."
    if f"$ORIGIN" not in text:
        text = f"$ORIGIN {origin}\n" + text
    # The target loads under origin "example.": keep the zone's own $ORIGIN lines.
    put("zonefile", text)
put("zonefile", "$TTL 1h\n@ SOA ns h 1 2h 15m 2w 5m\n NS ns\nns A 192.0.2.1\nwww CNAME ns\n* TXT \"w\"\n")

for path in sorted(glob.glob(os.path.join(data, "route53", "*.json"))):
    listing = json.load(open(path))
    hz = listing["HostedZone"]
    zone = {"Id": hz["Id"], "Name": hz["Name"], "Private": False, "Vpcs": [], "Account": ""}
    sets = listing["ResourceRecordSets"]
    body = {"zones": [{"zone": zone, "records": sets, "serial": 1, "hash": "00"}],
            "health": [], "cidr": [], "endpoints": []}
    put("snapshot", json.dumps(body))
    # A replica's inputs: a zone part (as a syncer writes it) and a manifest.
    put("replica", json.dumps({"zone": "Z1", "part": 0, "parts": 1, "records": sets}))
    manifest = {"format": 2, "zones": [{"id": "Z1", "name": hz["Name"], "private": False, "serial": 7,
                "hash": "00", "objects": [{"name": "00" * 32, "size": 100}]}],
                "health": [["hc-1", True]], "cidr": [], "endpoints": [], "internal_networks": ["10.0.0.0/8"]}
    put("replica", json.dumps(manifest))
    for s in sets:
        code = TYPES.get(s["Type"])
        if code is None:
            continue
        for rr in s.get("ResourceRecords", []):
            put("route53_value", struct.pack(">H", code) + rr["Value"].encode())
        put("route53_value", struct.pack(">H", code) + s["Name"].encode())

# Route53 change events as EventBridge delivers them to the event queue (and through SNS).
def event(name, params, response=None):
    return {"version": "0", "id": "6f1b5c2e-0d5e-4a7b-9a43-1f0e2d8c9b11",
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.route53",
            "account": "111122223333", "time": "2026-12-05T18:36:00Z", "region": "us-east-1",
            "resources": [],
            "detail": {"eventVersion": "1.08", "eventTime": "2026-12-05T18:36:00Z",
                       "eventSource": "route53.amazonaws.com", "eventName": name,
                       "awsRegion": "us-east-1", "requestParameters": params,
                       "responseElements": response, "eventID": "883b14d9-2f84-4005-8bc5-c7bf0cebc116",
                       "eventType": "AwsApiCall", "recipientAccountId": "111122223333"}}
change = event("ChangeResourceRecordSets", {"hostedZoneId": "Z1PA6795UKMFR9", "changeBatch": {"changes": [
    {"action": "UPSERT", "resourceRecordSet": {"name": "www.example.com.", "type": "A", "tTL": 300,
                                               "resourceRecords": [{"value": "192.0.2.1"}]}},
    {"action": "DELETE", "resourceRecordSet": {"name": "\\052.example.com", "type": "TXT", "tTL": 60,
                                               "resourceRecords": [{"value": "\"x\""}]}}]}},
    {"changeInfo": {"id": "/change/C1", "status": "PENDING"}})
put("route53_event", json.dumps(change))
put("route53_event", json.dumps({"Type": "Notification", "MessageId": "m1", "Message": json.dumps(change)}))
put("route53_event", json.dumps(event("CreateHostedZone", {"name": "example.com", "callerReference": "r"},
                                      {"hostedZone": {"id": "/hostedzone/Z0NEW", "name": "example.com."}})))
put("route53_event", json.dumps(event("DeleteHostedZone", {"id": "Z0OLD"})))
put("route53_event", json.dumps(event("AssociateVPCWithHostedZone",
                                      {"hostedZoneId": "Z0P", "vPC": {"vPCRegion": "us-east-1", "vPCId": "vpc-1"}})))
